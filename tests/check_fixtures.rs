//! Data-driven tests of `phigate check`: broken rule files that state their
//! own expected findings, run through the real binary.
//!
//! Every `NAME.rules` under `tests/check/` opens with comment lines:
//!
//! ```text
//! # args: --production              extra command-line arguments (optional)
//! # expect: E0204 14:9              a finding in the fixture: code line:column
//! # expect: E0602 NAME.toml:3:17    a finding in another file of the folder
//! ```
//!
//! Lines and columns are 1-based, columns in characters. When `NAME.toml`
//! sits beside the fixture it is passed as `--config`. The findings must be
//! exactly the expected ones, no more and no fewer, and the exit code must
//! be 1 when an error is expected and 0 when only warnings are.
//!
//! A case that cannot be committed (a rule file over 32 MiB) is generated
//! into a temporary folder at run time; see [`generated_cases`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use phigate::rules::{Severity, codes};
use serde_json::Value;

/// One finding, reduced to what a fixture states about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    code: String,
    file: String,
    line: u64,
    column: u64,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{}:{}",
            self.code, self.file, self.line, self.column
        )
    }
}

/// A rule file to check and what `check` must say about it.
struct Fixture {
    /// The folder `check` runs in; every path is relative to it.
    dir: PathBuf,
    /// The rule file's name within `dir`.
    file: String,
    args: Vec<String>,
    expected: Vec<Finding>,
}

/// A case written at run time: its file name, its expectations in the
/// fixture notation, and its contents.
struct GeneratedCase {
    file: &'static str,
    expect: &'static [&'static str],
    contents: fn() -> Vec<u8>,
}

/// The cases too large to commit.
fn generated_cases() -> Vec<GeneratedCase> {
    vec![GeneratedCase {
        file: "too_large.rules",
        expect: &["E0105 1:1"],
        contents: || {
            // Valid UTF-8 comments one byte past the 32 MiB limit, so the
            // size is the only thing wrong with the file.
            let line = b"# padding: a generated rule file larger than the checker accepts\n";
            let limit = 32 * 1024 * 1024;
            let mut bytes = Vec::with_capacity(limit + line.len());
            while bytes.len() <= limit {
                bytes.extend_from_slice(line);
            }
            bytes
        },
    }]
}

#[test]
fn fixtures_report_exactly_their_expected_findings() {
    let fixtures =
        committed_fixtures().unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    assert!(
        fixtures.len() >= 45,
        "only {} fixtures under tests/check",
        fixtures.len()
    );

    let scratch = ScratchDir::new("phigate-check-fixtures");
    let mut failures = Vec::new();
    for case in generated_cases() {
        let path = scratch.path.join(case.file);
        std::fs::write(&path, (case.contents)()).expect("write a generated case");
        let expected = case
            .expect
            .iter()
            .map(|text| parse_expectation(text, case.file))
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|problem| panic!("generated case {}: {problem}", case.file));
        let fixture = Fixture {
            dir: scratch.path.clone(),
            file: case.file.to_string(),
            args: Vec::new(),
            expected,
        };
        failures.extend(run_fixture(&fixture));
    }
    for fixture in &fixtures {
        failures.extend(run_fixture(fixture));
    }

    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        fixtures.len() + generated_cases().len(),
        failures.join("\n\n")
    );
}

#[test]
fn fixtures_cover_every_finding_code() {
    let fixtures =
        committed_fixtures().unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    let mut covered: Vec<String> = fixtures
        .iter()
        .flat_map(|fixture| fixture.expected.iter().map(|finding| finding.code.clone()))
        .collect();
    for case in generated_cases() {
        for text in case.expect {
            let finding =
                parse_expectation(text, case.file).expect("a valid generated expectation");
            covered.push(finding.code);
        }
    }

    let missing: Vec<&str> = codes::ALL
        .iter()
        .map(|code| code.id)
        .filter(|id| !covered.iter().any(|c| c == id))
        .collect();
    assert!(
        missing.is_empty(),
        "no fixture expects {}",
        missing.join(", ")
    );

    let unknown: Vec<&String> = covered
        .iter()
        .filter(|c| !codes::ALL.iter().any(|code| code.id == c.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "fixtures expect codes not in the registry: {unknown:?}"
    );
}

#[test]
fn example_rule_set_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_phigate"))
        .current_dir(root)
        .args(["check", "rules", "--format", "json"])
        .output()
        .expect("run phigate");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let findings = parse_findings(&stdout, root).unwrap_or_else(|problem| panic!("{problem}"));
    let shown: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert!(
        findings.is_empty(),
        "the example rules have findings: {shown:?}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every `*.rules` under `tests/check/`, in name order, or every problem
/// with their expectation lines.
fn committed_fixtures() -> Result<Vec<Fixture>, Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read tests/check")
        .map(|entry| entry.expect("list tests/check").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rules"))
        .collect();
    paths.sort();

    let mut fixtures = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match read_fixture(&dir, &path) {
            Ok(fixture) => fixtures.push(fixture),
            Err(problem) => problems.push(format!("{}: {problem}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(fixtures)
    } else {
        Err(problems)
    }
}

/// Reads the leading comment block of a fixture.
fn read_fixture(dir: &Path, path: &Path) -> Result<Fixture, String> {
    let file = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or("the file name is not UTF-8")?
        .to_string();
    // Lossy: a fixture may hold a byte that is not UTF-8 on purpose.
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&bytes);

    let mut args = Vec::new();
    let mut expected = Vec::new();
    for line in text.lines().take_while(|line| line.starts_with('#')) {
        if let Some(rest) = line.strip_prefix("# expect:") {
            expected.push(parse_expectation(rest.trim(), &file)?);
        } else if let Some(rest) = line.strip_prefix("# args:") {
            args.extend(rest.split_whitespace().map(str::to_string));
        }
    }
    if expected.is_empty() {
        return Err("no `# expect:` line: a fixture must state what is wrong with it".into());
    }

    let config = path.with_extension("toml");
    if config.is_file() {
        let name = config
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("the config name is not UTF-8")?;
        args.extend(["--config".to_string(), name.to_string()]);
    }
    Ok(Fixture {
        dir: dir.to_path_buf(),
        file,
        args,
        expected,
    })
}

/// `E0204 14:9` (in `default_file`) or `E0602 other.toml:3:17`.
fn parse_expectation(text: &str, default_file: &str) -> Result<Finding, String> {
    let malformed = || {
        format!(
            "malformed expectation `{text}`: write `CODE LINE:COLUMN` or `CODE FILE:LINE:COLUMN`"
        )
    };
    let (code, location) = text.split_once(' ').ok_or_else(malformed)?;
    let mut parts = location.trim().rsplitn(3, ':');
    let column = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(malformed)?;
    let line = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(malformed)?;
    let file = parts.next().unwrap_or(default_file).to_string();
    Ok(Finding {
        code: code.to_string(),
        file,
        line,
        column,
    })
}

/// Runs `check` on one fixture; `None` when it behaves as expected, else
/// a description naming the fixture, what was expected and what came.
fn run_fixture(fixture: &Fixture) -> Option<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_phigate"))
        .current_dir(&fixture.dir)
        .arg("check")
        .arg(&fixture.file)
        .args(["--format", "json"])
        .args(&fixture.args)
        .output()
        .expect("run phigate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    let actual = match parse_findings(&stdout, &fixture.dir) {
        Ok(findings) => findings,
        Err(problem) => {
            return Some(format!(
                "{}: {problem}\n  exit code: {:?}\n  stderr: {}",
                fixture.file,
                output.status.code(),
                stderr.trim()
            ));
        }
    };

    let mut expected = fixture.expected.clone();
    expected.sort();
    let missing = difference(&expected, &actual);
    let extra = difference(&actual, &expected);

    let expects_error = expected
        .iter()
        .any(|finding| severity_of(&finding.code) == Some(Severity::Error));
    let expected_exit = if expects_error { 1 } else { 0 };
    let exit = output.status.code();

    if missing.is_empty() && extra.is_empty() && exit == Some(expected_exit) {
        return None;
    }
    let list = |findings: &[Finding]| {
        if findings.is_empty() {
            "(none)".to_string()
        } else {
            findings
                .iter()
                .map(Finding::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut report = format!(
        "{}:\n  expected: {}\n  actual:   {}",
        fixture.file,
        list(&expected),
        list(&actual)
    );
    if !missing.is_empty() {
        report.push_str(&format!("\n  missing:  {}", list(&missing)));
    }
    if !extra.is_empty() {
        report.push_str(&format!("\n  extra:    {}", list(&extra)));
    }
    if exit != Some(expected_exit) {
        report.push_str(&format!(
            "\n  exit code {exit:?}, expected {expected_exit}; stderr: {}",
            stderr.trim()
        ));
    }
    Some(report)
}

/// The findings of `check --format json`, sorted, with paths relative to
/// the folder `check` ran in.
fn parse_findings(stdout: &str, dir: &Path) -> Result<Vec<Finding>, String> {
    let document: Value = serde_json::from_str(stdout)
        .map_err(|error| format!("stdout is not JSON ({error}): {stdout}"))?;
    let findings = document
        .get("findings")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `findings` array in {stdout}"))?;

    let mut parsed = Vec::new();
    for finding in findings {
        let field = |name: &str| {
            finding
                .get(name)
                .ok_or_else(|| format!("a finding lacks `{name}`: {finding}"))
        };
        let text = |name: &str| {
            field(name)?
                .as_str()
                .ok_or_else(|| format!("`{name}` is not a string: {finding}"))
        };
        let number = |name: &str| {
            field(name)?
                .as_u64()
                .ok_or_else(|| format!("`{name}` is not a number: {finding}"))
        };

        let file = Path::new(text("file")?);
        let file = file
            .strip_prefix(dir)
            .or_else(|_| file.strip_prefix("."))
            .unwrap_or(file);
        parsed.push(Finding {
            code: text("code")?.to_string(),
            file: file.to_string_lossy().replace('\\', "/"),
            line: number("line")?,
            column: number("column")?,
        });
    }
    parsed.sort();
    Ok(parsed)
}

/// The findings of `a` left after taking away one match in `b` for each:
/// a multiset difference of two sorted lists.
fn difference(a: &[Finding], b: &[Finding]) -> Vec<Finding> {
    let mut rest = b.to_vec();
    let mut left = Vec::new();
    for finding in a {
        match rest.iter().position(|other| other == finding) {
            Some(index) => {
                rest.remove(index);
            }
            None => left.push(finding.clone()),
        }
    }
    left
}

fn severity_of(code: &str) -> Option<Severity> {
    codes::ALL.iter().find(|c| c.id == code).map(|c| c.severity)
}

/// A folder under the system's temporary directory, removed when dropped.
struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    fn new(prefix: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        ScratchDir { path }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
