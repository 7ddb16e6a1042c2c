//! `phigate keys generate` and `phigate decrypt`, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use phigate::keys::KeyRing;
use serde_json::json;

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "phigate-keys-cli-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `phigate ARGS...` in `dir`.
fn phigate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phigate"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn generate_twice_then_decrypt_a_value_of_the_first_key() {
    // No configuration: the defaults put the key file at data/keys.json.
    let dir = temp_dir("default");
    let first = phigate(&dir, &["keys", "generate"]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let first_id = stdout(&first).trim_end().to_string();
    assert!(first_id.starts_with('k') && !first_id.contains(char::is_whitespace));
    assert_eq!(stdout(&first), format!("{first_id}\n"), "the id alone");

    let second = phigate(&dir, &["keys", "generate"]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let second_id = stdout(&second).trim_end().to_string();
    assert_ne!(first_id, second_id);

    let key_file = dir.join("data/keys.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let ring = KeyRing::load(&key_file).unwrap();
    assert_eq!(ring.default_id(), Some(second_id.as_str()));

    let secret = json!({"name": "Ada Lovelace", "mrn": "MRN-0012345", "age": 36});
    let encrypted = ring.encrypt(Some(&first_id), &secret).unwrap();
    assert!(encrypted.starts_with(&format!("enc:v1:{first_id}:")));

    let decrypted = phigate(&dir, &["decrypt", &encrypted]);
    assert_eq!(decrypted.status.code(), Some(0), "{}", stderr(&decrypted));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&decrypted)).unwrap();
    assert_eq!(printed, secret);
    assert_eq!(stderr(&decrypted), "");

    // A string decrypts to its JSON text.
    let name = ring.encrypt(None, &json!("Ada")).unwrap();
    assert_eq!(stdout(&phigate(&dir, &["decrypt", &name])), "\"Ada\"\n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_configured_key_file_is_used() {
    let dir = temp_dir("config");
    std::fs::write(
        dir.join("gateway.toml"),
        "[keys]\nfile = \"secrets/ring.json\"\n",
    )
    .unwrap();
    let output = phigate(&dir, &["keys", "generate", "--config", "gateway.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ring = KeyRing::load(&dir.join("secrets/ring.json")).unwrap();
    assert_eq!(ring.default_id(), Some(stdout(&output).trim_end()));
    assert!(!dir.join("data").exists());

    // `phigate.toml` is found without `--config`.
    std::fs::rename(dir.join("gateway.toml"), dir.join("phigate.toml")).unwrap();
    let value = ring.encrypt(None, &json!(42)).unwrap();
    let output = phigate(&dir, &["--config", "phigate.toml", "decrypt", &value]);
    assert_eq!(stdout(&output), "42\n");
    let output = phigate(&dir, &["decrypt", &value]);
    assert_eq!(stdout(&output), "42\n", "{}", stderr(&output));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn values_that_cannot_be_decrypted_exit_1_and_bad_input_exits_2() {
    let dir = temp_dir("failures");
    assert_eq!(phigate(&dir, &["keys", "generate"]).status.code(), Some(0));
    let ring = KeyRing::load(&dir.join("data/keys.json")).unwrap();
    let plaintext = "PLAINTEXT-CANARY";
    let encrypted = ring.encrypt(None, &json!(plaintext)).unwrap();

    // Alter one character of the body.
    let mut altered = encrypted.clone().into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let unknown = encrypted.replacen("enc:v1:", "enc:v1:other-", 1);
    let from_another_ring = KeyRing::ephemeral()
        .encrypt(None, &json!(plaintext))
        .unwrap();

    let cases = [
        (altered.as_str(), 1, "could not be decrypted"),
        (unknown.as_str(), 1, "unknown key"),
        (from_another_ring.as_str(), 1, "unknown key `ephemeral`"),
        ("PLAINTEXT-CANARY", 2, "not an encrypted value"),
        ("hmac:v1:k:abc", 2, "one-way"),
    ];
    for (value, code, message) in cases {
        let output = phigate(&dir, &["decrypt", value]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{value}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
        assert!(!stderr(&output).contains(plaintext), "{}", stderr(&output));
        assert_eq!(stdout(&output), "");
    }

    let missing = phigate(&dir, &["--config", "missing.toml", "decrypt", &encrypted]);
    assert_eq!(missing.status.code(), Some(2));
    let no_key_file = temp_dir("no-key-file");
    let output = phigate(&no_key_file, &["decrypt", &encrypted]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("keys.json"), "{}", stderr(&output));
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(no_key_file).unwrap();
}

#[test]
fn a_malformed_key_file_is_reported_without_its_contents() {
    let dir = temp_dir("malformed");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let text = r#"{"keys": [{"id": "k1", "created_at": "2026-01-01T00:00:00Z", "aes": "U0VDUkVULUtFWQ==", "hmac": "U0VDUkVULUtFWQ=="}]}"#;
    std::fs::write(dir.join("data/keys.json"), text).unwrap();

    for args in [
        &["keys", "generate"][..],
        &["decrypt", "enc:v1:k1:AAAA"][..],
    ] {
        let output = phigate(&dir, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains("malformed key file"), "{message}");
        assert!(message.contains("`aes` must be 32 bytes"), "{message}");
        assert!(!message.contains("U0VDUkVU"), "{message}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("data/keys.json")).unwrap(),
        text
    );
    std::fs::remove_dir_all(dir).unwrap();
}
