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
    let matchers = |rounds: &[Round]| rounds.iter().map(Round::matcher).collect::<Vec<_>>();
    assert_eq!(matchers(&Round::plan(&names, 5, false)), vec![None]);
    assert_eq!(
        matchers(&Round::plan(&names, usize::MAX, false)),
        vec![None]
    );
    // A complete list (every instance with job series, from the index) needs no last round.
    assert_eq!(Round::plan(&names, 2, true).len(), 3);
    assert_eq!(
        matchers(&Round::plan(&names, 2, false)),
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
fn a_refused_round_splits_into_rounds_covering_the_same_nodes() {
    let names: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // The whole: both halves of the list, and the rest (nodes without facts).
    let all = Round::All(&names);
    assert_eq!(
        all.split(),
        Some(vec![
            Round::Nodes(&names[..3]),
            Round::Nodes(&names[3..]),
            Round::Rest(&names)
        ])
    );
    // A group halves until one node; one node and the rest cannot split.
    assert_eq!(
        Round::Nodes(&names[..3]).split(),
        Some(vec![Round::Nodes(&names[..1]), Round::Nodes(&names[1..3])])
    );
    assert_eq!(Round::Nodes(&names[..1]).split(), None);
    assert_eq!(Round::Rest(&names).split(), None);
    assert_eq!(Round::All(&[]).split(), None);
    // Splitting down to single nodes covers every node exactly once.
    let mut todo = vec![all];
    let mut seen = Vec::new();
    while let Some(r) = todo.pop() {
        match (r, r.split()) {
            (_, Some(parts)) => todo.extend(parts),
            (Round::Nodes(g), None) => seen.extend(g.iter().cloned()),
            (Round::Rest(_), None) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, names);
}

#[test]
fn no_matcher_lists_more_than_its_bound() {
    let many: Vec<String> = (0..1_200).map(|i| format!("node{i:04}:9977")).collect();
    // Rounds never name more nodes than the bound, however many a round was asked to hold.
    let rounds = Round::plan(&many, usize::MAX - 1, true);
    assert!(rounds.iter().all(|r| r.nodes() <= MAX_NODES_PER_MATCHER));
    assert_eq!(rounds.len(), 3);
    // The resets pass: the few nodes that need it, named; or the many that do not, left out;
    // or none at all.
    let marker = |grown: &[String], new: &[String]| {
        CounterStarts::new(
            grown
                .iter()
                .map(|i| (("c".to_string(), i.clone()), 0.0))
                .chain(new.iter().map(|i| (("c".to_string(), i.clone()), 1e12))),
            std::iter::empty(),
        )
    };
    let (old, young) = many.split_at(1_190);
    let starts = marker(old, young);
    let complete = Collector::resets_scope(&starts, 1_000_000, None, Some(&many));
    assert_eq!(
        complete,
        Resets::Matcher(format!(
            "instance=~\"{}\"",
            young
                .iter()
                .map(|i| regex_literal(i))
                .collect::<Vec<_>>()
                .join("|")
        ))
    );
    // Without the complete list, 1,190 names to leave out are too many: every series.
    assert_eq!(
        Collector::resets_scope(&starts, 1_000_000, None, None),
        Resets::All
    );
    // A round of grown nodes only is skipped; a round names its own nodes that need the pass.
    assert_eq!(
        Collector::resets_scope(&starts, 1_000_000, Some(&old[..10]), None),
        Resets::Skip
    );
    assert_eq!(
        Collector::resets_scope(&starts, 1_000_000, Some(&many[1_185..1_195]), None),
        Resets::Matcher(format!(
            "instance=~\"{}\"",
            many[1_190..1_195]
                .iter()
                .map(|i| regex_literal(i))
                .collect::<Vec<_>>()
                .join("|")
        ))
    );
    // Few grown nodes: left out by name.
    let starts = marker(&many[..3], &many[3..]);
    assert_eq!(
        Collector::resets_scope(&starts, 1_000_000, None, None),
        Resets::Matcher(format!(
            "instance!~\"{}\"",
            many[..3]
                .iter()
                .map(|i| regex_literal(i))
                .collect::<Vec<_>>()
                .join("|")
        ))
    );
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

#[test]
fn owners_must_add_up_to_each_node_less_its_unallocated_energy() {
    use crate::data::{ByComponent, OwnerData};
    let e = |cpu: f64, gpu: f64| ByComponent {
        cpu,
        gpu,
        ..ByComponent::default()
    };
    let node = |i: &str, energy, unallocated| {
        (
            (String::from("c"), i.to_string()),
            NodeData {
                cluster: "c".into(),
                instance: i.into(),
                energy,
                unallocated,
                ..NodeData::default()
            },
        )
    };
    let owner = |i: &str, user: &str, energy| OwnerData {
        cluster: "c".into(),
        instance: i.into(),
        account: "p".into(),
        user: user.into(),
        energy,
        ..OwnerData::default()
    };
    let nodes: BTreeMap<_, _> = [
        node("n1", e(1e9, 4e9), e(4e8, 1e9)),
        node("n2", e(5e8, 0.0), e(5e8, 0.0)),
    ]
    .into_iter()
    .collect();
    // n1: two pairs add up to 6e8 cpu and 3e9 gpu; n2 is idle and has no owners.
    let mut owners = vec![
        owner("n1", "a", e(2e8, 1e9)),
        owner("n1", "b", e(4e8 + 1e-4, 2e9)),
    ];
    assert_eq!(owner_gaps(&owners, &nodes), Vec::<String>::new());
    // A pair's run misread by 100 J (a scrape of a 7 W share at 15 s).
    owners[1].energy.gpu -= 100.0;
    assert_eq!(
        owner_gaps(&owners, &nodes),
        vec!["c/n1 gpu: owners 2999999900.000 J, node less unallocated 3000000000.000 J"]
    );
    // A node whose exporter publishes no owner counters (n3), and owners of a node the node
    // counters do not know (n4).
    owners[1].energy.gpu += 100.0;
    let mut more = nodes.clone();
    more.extend([node("n3", e(2.0, 0.0), e(1.0, 0.0))]);
    owners.push(owner("n4", "a", e(1.0, 0.0)));
    assert_eq!(
        owner_gaps(&owners, &more),
        vec![
            "c/n3 cpu: owners 0.000 J, node less unallocated 1.000 J",
            "c/n4 cpu: owners 1.000 J, node less unallocated 0.000 J",
        ]
    );
}
