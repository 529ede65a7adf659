//! Node names as reports show them: the host, not the scrape target. A node is named by the
//! hostname its exporter publishes in `joulebook_node_info`, else by its `instance` label
//! without the port (`gpu08:9977` → `gpu08`, `[fd00::8]:9977` → `fd00::8`). Where two instances
//! of a cluster would show the same name (two exporters on one host), both keep their
//! `instance` so that no row is mistaken for another.

use std::collections::BTreeMap;

/// The host part of a Prometheus `instance` (`host:port`), or the whole label if it has no port.
pub fn host_of(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        // [IPv6]:port
        if let Some((host, port)) = rest.split_once(']') {
            if port.is_empty() || is_port(port.strip_prefix(':').unwrap_or("x")) {
                return host;
            }
        }
        return instance;
    }
    match instance.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((host, port)) if !host.contains(':') && !host.is_empty() && is_port(port) => host,
        _ => instance,
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Display names of `(cluster, instance)` keys, given each one's published hostname if any.
pub fn node_names<'a>(
    nodes: impl IntoIterator<Item = ((&'a str, &'a str), Option<&'a str>)>,
) -> BTreeMap<(String, String), String> {
    let wanted: Vec<((&str, &str), &str)> = nodes
        .into_iter()
        .map(|((c, i), h)| {
            let name = h.filter(|h| !h.trim().is_empty()).unwrap_or(host_of(i));
            ((c, i), name)
        })
        .collect();
    let mut uses: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for ((c, _), n) in &wanted {
        *uses.entry((c, n)).or_default() += 1;
    }
    wanted
        .iter()
        .map(|((c, i), n)| {
            let shown = if uses[&(*c, *n)] > 1 { *i } else { *n };
            ((c.to_string(), i.to_string()), shown.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_dropped() {
        assert_eq!(host_of("gpu08:9977"), "gpu08");
        assert_eq!(
            host_of("gpu08.hpc.example.org:9977"),
            "gpu08.hpc.example.org"
        );
        assert_eq!(host_of("10.0.0.8:9977"), "10.0.0.8");
        assert_eq!(host_of("[fd00::8]:9977"), "fd00::8");
        assert_eq!(host_of("gpu08"), "gpu08");
        assert_eq!(host_of("fd00::8"), "fd00::8");
        assert_eq!(host_of("odd:name"), "odd:name");
        assert_eq!(host_of(":9977"), ":9977");
    }

    #[test]
    fn hostnames_win_and_clashes_keep_the_instance() {
        let names = node_names([
            (("c", "10.0.0.8:9977"), Some("gpu08")),
            (("c", "gpu09:9977"), None),
            (("c", "gpu09:9978"), None),
            (("c", "gpu10:9977"), Some(" ")),
            (("d", "gpu09:9977"), None),
        ]);
        let get = |c: &str, i: &str| names[&(c.to_string(), i.to_string())].as_str();
        assert_eq!(get("c", "10.0.0.8:9977"), "gpu08");
        assert_eq!(get("c", "gpu09:9977"), "gpu09:9977");
        assert_eq!(get("c", "gpu09:9978"), "gpu09:9978");
        assert_eq!(get("c", "gpu10:9977"), "gpu10");
        // Another cluster's gpu09 is another node.
        assert_eq!(get("d", "gpu09:9977"), "gpu09");
    }
}
