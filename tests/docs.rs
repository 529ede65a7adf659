//! The docs stay true to the code: every metric defined in `joulebook_common` is in the README's
//! metric table with its type and labels.

#[test]
fn readme_lists_every_metric_with_its_type_and_labels() {
    let readme = std::fs::read_to_string(joulebook_tests::repo_root().join("README.md")).unwrap();
    for m in joulebook_common::ALL_METRICS {
        let name = m.name();
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("README's metric table has no row for {name}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], m.kind.as_str(), "{name}: type");
        let labels: Vec<&str> = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(labels, m.labels, "{name}: labels");
    }
}

#[test]
fn architecture_names_every_exporter_module() {
    let arch =
        std::fs::read_to_string(joulebook_tests::repo_root().join("ARCHITECTURE.md")).unwrap();
    let src = joulebook_tests::repo_root().join("exporter/src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let module = name.trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        assert!(
            arch.contains(&format!("`{module}")),
            "ARCHITECTURE.md does not mention {module}"
        );
    }
}
