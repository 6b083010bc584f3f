//! An empty program: the baseline for `startup-attribute`.

fn main() {}
