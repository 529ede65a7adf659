use super::*;

#[test]
fn quoting() {
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    assert_eq!(quote("x\ny"), r#""x\ny""#);
}

#[test]
fn rounds_of_job_queries_partition_the_instances() {
    let names: Vec<String> = ["a.x:9977", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(shard_matchers(&names, 5), vec![None]);
    assert_eq!(shard_matchers(&names, usize::MAX), vec![None]);
    let m = shard_matchers(&names, 2);
    assert_eq!(
        m,
        vec![
            Some(r#"instance=~"a\\.x:9977|b""#.to_string()),
            Some(r#"instance=~"c|d""#.to_string()),
            Some(r#"instance=~"e""#.to_string()),
            Some(r#"instance!~"a\\.x:9977|b|c|d|e""#.to_string()),
        ]
    );
    assert_eq!(regex_literal("n(1)|[2]*"), r"n\(1\)\|\[2\]\*");
}

#[test]
fn rounds_follow_node_days() {
    // A month of 40 nodes is one round; of 1,000 nodes, rounds of 48; a year, of 4.
    assert_eq!(auto_nodes_per_query(40, 31 * 86_400), usize::MAX);
    assert_eq!(auto_nodes_per_query(1_000, 31 * 86_400), 48);
    assert_eq!(auto_nodes_per_query(1_000, 365 * 86_400), 4);
    assert_eq!(auto_nodes_per_query(10, 3_650 * 86_400), 1);
}

#[test]
fn par_map_keeps_order_and_reports_errors() {
    let v: Vec<u32> = (0..50).collect();
    let r: Result<Vec<u32>, ()> = par_map(&v, 4, |x| Ok(x * 2));
    assert_eq!(r.unwrap(), v.iter().map(|x| x * 2).collect::<Vec<_>>());
    let r: Result<Vec<u32>, u32> = par_map(&v, 3, |x| if *x == 7 { Err(7) } else { Ok(*x) });
    assert_eq!(r, Err(7));
}
