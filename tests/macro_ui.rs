//! Every accepted form of `#[pidfile]` compiles and runs; every misuse fails
//! to compile with the error in its `.stderr` snapshot
//! (`TRYBUILD=overwrite` rewrites the snapshots, which are then read).

#[test]
fn attribute_forms() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
    // The misuses of `cluster = ..`, which needs pid-runtime's `etcd`
    // feature to compile at all; in this one run, since trybuild builds
    // every case in one project that two runs at once would wait on.
    #[cfg(feature = "cluster")]
    cases.compile_fail("tests/ui/cluster/*.rs");
}
