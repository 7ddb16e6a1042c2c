//! Tokens: the file, authentication, and `phigate token create` through
//! the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use phigate::auth::{AuthError, Origin, Principal, TOKEN_PREFIX, Tokens};

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "phigate-auth-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn plugin(name: &str) -> Principal {
    Principal::Plugin(name.to_string())
}

/// Runs `phigate ARGS...` in `dir`.
fn phigate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phigate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn a_created_token_authenticates_as_its_principal() {
    let path = temp_dir("round-trip").join("data/tokens.toml");
    let billing = Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    let ops = Tokens::create(&path, Principal::Admin("ops".into()), Origin::Cli).unwrap();
    assert!(billing.starts_with(TOKEN_PREFIX), "{billing}");
    assert_eq!(billing.len(), TOKEN_PREFIX.len() + 43);

    let tokens = Tokens::load(&path).unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens.authenticate(&billing), Some(plugin("billing")));
    assert_eq!(
        tokens.authenticate(&ops),
        Some(Principal::Admin("ops".into()))
    );
}

#[test]
fn wrong_tokens_are_refused() {
    let path = temp_dir("wrong").join("tokens.toml");
    let token = Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    let tokens = Tokens::load(&path).unwrap();

    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    for wrong in [
        "",
        TOKEN_PREFIX,
        &altered,
        &token[..token.len() - 1],
        &format!("{token} "),
        &format!("Bearer {token}"),
    ] {
        assert_eq!(tokens.authenticate(wrong), None, "{wrong:?}");
    }
    assert_eq!(Tokens::default().authenticate(&token), None);
}

#[test]
fn a_plugin_may_hold_several_tokens() {
    let path = temp_dir("rotate").join("tokens.toml");
    let old = Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    let new = Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    assert_ne!(old, new);
    let tokens = Tokens::load(&path).unwrap();
    assert_eq!(tokens.authenticate(&old), Some(plugin("billing")));
    assert_eq!(tokens.authenticate(&new), Some(plugin("billing")));
}

#[test]
fn the_file_holds_hashes_never_tokens() {
    let path = temp_dir("hashes").join("tokens.toml");
    let principals = [
        plugin("billing"),
        plugin("lab"),
        Principal::Admin("ops".into()),
    ];
    let created = Tokens::create_all(&path, &principals, Origin::Development).unwrap();
    assert_eq!(created.len(), 3);

    let text = std::fs::read_to_string(&path).unwrap();
    for token in &created {
        assert!(!text.contains(token.as_str()), "the file holds a token");
        let body = token.strip_prefix(TOKEN_PREFIX).unwrap();
        assert!(!text.contains(body), "the file holds a token's body");
    }
    assert_eq!(text.matches("[[token]]").count(), 3);
    assert_eq!(text.matches("sha256 = \"").count(), 3);
    assert_eq!(text.matches("origin = \"development\"").count(), 3);
    assert!(text.contains("admin = \"ops\""));

    // Nor does any Debug output.
    let debug = format!("{:?}", Tokens::load(&path).unwrap());
    assert!(debug.contains("billing"), "{debug}");
    assert!(
        !debug.contains("sha256") && !debug.contains(TOKEN_PREFIX),
        "{debug}"
    );
}

#[cfg(unix)]
#[test]
fn the_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = temp_dir("mode").join("data/tokens.toml");
    Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    Tokens::create(&path, plugin("lab"), Origin::Cli).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "still after a rewrite");
}

#[test]
fn creating_keeps_the_rest_of_the_file() {
    let path = temp_dir("keep").join("tokens.toml");
    let first = Tokens::create(&path, plugin("billing"), Origin::Cli).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n# billing's token is rotated in March\n");
    std::fs::write(&path, &text).unwrap();

    let second = Tokens::create(&path, plugin("lab"), Origin::Cli).unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&text), "{after}");
    let tokens = Tokens::load(&path).unwrap();
    assert_eq!(tokens.authenticate(&first), Some(plugin("billing")));
    assert_eq!(tokens.authenticate(&second), Some(plugin("lab")));
}

#[test]
fn a_malformed_file_is_reported_not_extended() {
    let path = temp_dir("malformed").join("tokens.toml");
    let broken = "[[token]]\nplugin = \"billing\"\nsha256 = \"not hex\"\n\
                  created_at = \"2026-12-03T17:45:00Z\"\norigin = \"cli\"\n";
    std::fs::write(&path, broken).unwrap();

    let error = Tokens::create(&path, plugin("lab"), Origin::Cli).unwrap_err();
    assert!(matches!(error, AuthError::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("token 1"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    assert!(Tokens::load(&path).is_err());

    std::fs::write(&path, "[[token]]\nplugin = \"billing\"\nsecret = \"x\"\n").unwrap();
    let error = Tokens::load(&path).unwrap_err();
    assert!(error.to_string().contains("secret"), "{error}");
}

#[test]
fn names_follow_the_plugin_names_of_the_rules() {
    let path = temp_dir("names").join("tokens.toml");
    for bad in ["", "a b", "billing\"\nadmin = \"x", &"x".repeat(65)] {
        let error = Tokens::create(&path, plugin(bad), Origin::Cli).unwrap_err();
        assert!(matches!(error, AuthError::InvalidName { .. }), "{error}");
    }
    assert!(!path.exists(), "nothing written for a bad name");
    Tokens::create(&path, plugin("lab-2.eu_west"), Origin::Cli).unwrap();
}

#[test]
fn a_missing_file_is_an_error_to_load_and_empty_otherwise() {
    let path = temp_dir("missing").join("tokens.toml");
    assert!(matches!(
        Tokens::load(&path),
        Err(AuthError::Io { action: "read", .. })
    ));
    assert!(Tokens::load_or_empty(&path).unwrap().is_empty());
}

#[test]
fn token_create_prints_the_token_alone() {
    // No configuration: the defaults put the file at data/tokens.toml.
    let dir = temp_dir("cli");
    let output = phigate(&dir, &["token", "create", "--plugin", "billing"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.ends_with('\n'));
    let token = stdout.trim_end();
    assert!(token.starts_with(TOKEN_PREFIX), "{token}");
    assert!(!stderr.contains(token), "the token goes to stdout only");
    assert!(stderr.contains("billing"), "{stderr}");

    let tokens = Tokens::load(&dir.join("data/tokens.toml")).unwrap();
    assert_eq!(tokens.authenticate(token), Some(plugin("billing")));

    let output = phigate(&dir, &["token", "create", "--admin", "ops"]);
    assert_eq!(output.status.code(), Some(0));
    let admin = String::from_utf8(output.stdout).unwrap();
    let tokens = Tokens::load(&dir.join("data/tokens.toml")).unwrap();
    assert_eq!(
        tokens.authenticate(admin.trim_end()),
        Some(Principal::Admin("ops".into()))
    );
    assert_eq!(tokens.authenticate(token), Some(plugin("billing")));
}

#[test]
fn token_create_follows_the_configuration() {
    let dir = temp_dir("cli-config");
    std::fs::write(
        dir.join("gateway.toml"),
        "[auth]\ntokens_file = \"secrets/tokens.toml\"\n",
    )
    .unwrap();
    let output = phigate(
        &dir,
        &[
            "token",
            "create",
            "--plugin",
            "lab",
            "--config",
            "gateway.toml",
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    let token = String::from_utf8(output.stdout).unwrap();
    let tokens = Tokens::load(&dir.join("secrets/tokens.toml")).unwrap();
    assert_eq!(tokens.authenticate(token.trim_end()), Some(plugin("lab")));
}

#[test]
fn token_create_needs_exactly_one_principal_and_a_valid_name() {
    let dir = temp_dir("cli-usage");
    for args in [
        &["token", "create"][..],
        &["token", "create", "--plugin", "a", "--admin", "b"],
        &["token", "create", "--plugin", "a b"],
    ] {
        let output = phigate(&dir, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert!(!dir.join("data/tokens.toml").exists());
}
