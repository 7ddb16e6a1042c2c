//! `phigate test`: run the `test` blocks of a rule set.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{EXIT_FINDINGS, EXIT_OK, RuleContext};
use crate::rules::testing;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Rule files or folders. Default: the configuration's `rules.paths`,
    /// else `rules`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn run(config_arg: Option<&Path>, args: TestArgs) -> u8 {
    let context = match RuleContext::open(config_arg, &args.paths) {
        Ok(context) => context,
        Err(code) => return code,
    };
    let rule_set = &context.rule_set;
    let tests = rule_set.tests();
    let results = testing::run(&rule_set.engine, &tests, &context.keys, context.filter_mode);

    let mut failed = 0;
    for result in &results {
        let (file, line, _) = rule_set.sources.locate(result.span);
        if result.passed() {
            println!("ok      {}", result.name);
        } else {
            failed += 1;
            println!(
                "FAILED  {}  ({}:{line})",
                result.name,
                file.path().display()
            );
            for failure in &result.failures {
                println!("        {failure}");
            }
        }
    }
    let passed = results.len() - failed;
    println!();
    println!("{passed} passed, {failed} failed");
    if failed > 0 { EXIT_FINDINGS } else { EXIT_OK }
}
