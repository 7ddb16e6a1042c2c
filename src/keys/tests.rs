//! Tests of the key file, the value formats and the secrecy of key bytes.

use std::path::PathBuf;

use serde_json::json;

use super::*;

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let mut suffix = [0u8; 6];
    random(&mut suffix).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "phigate-keys-{name}-{}",
        general_purpose::URL_SAFE_NO_PAD.encode(suffix)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key file with fixed keys: `old` (all bytes 1 and 2) and `new` (3, 4).
fn fixed_ring() -> KeyRing {
    let entry = |id: &str, at: &str, aes: u8, mac: u8| {
        json!({
            "id": id,
            "created_at": at,
            "aes": STANDARD.encode([aes; KEY_LEN]),
            "hmac": STANDARD.encode([mac; KEY_LEN]),
        })
    };
    let text = json!({"keys": [
        entry("new", "2026-12-03T17:45:00Z", 3, 4),
        entry("old", "2025-01-01T00:00:00+01:00", 1, 2),
    ]})
    .to_string();
    KeyRing::from_entries(parse_key_file(&text).unwrap())
}

#[test]
fn values_of_every_json_type_round_trip() {
    let ring = fixed_ring();
    for value in [
        json!("Ada Lovelace"),
        json!(""),
        json!(42),
        json!(-1.5),
        json!(true),
        json!(null),
        json!({"street": "1 Main St", "zip": "02134", "tags": [1, "two"]}),
        json!([1, 2, 3]),
    ] {
        let encrypted = ring.encrypt(None, &value).unwrap();
        assert!(encrypted.starts_with("enc:v1:new:"), "{encrypted}");
        assert_eq!(ring.decrypt(&encrypted).unwrap(), value);
    }
}

#[test]
fn encryption_is_randomised_and_url_safe_without_padding() {
    let ring = fixed_ring();
    let first = ring.encrypt(None, &json!("x")).unwrap();
    let second = ring.encrypt(None, &json!("x")).unwrap();
    assert_ne!(first, second);
    let body = first.rsplit(':').next().unwrap();
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{body}"
    );
    // 12-byte nonce + 3-byte plaintext `"x"` + 16-byte tag = 31 bytes.
    assert_eq!(BASE64URL.decode(body).unwrap().len(), 31);
}

#[test]
fn padded_base64_is_accepted() {
    let ring = fixed_ring();
    let encrypted = ring.encrypt(None, &json!("x")).unwrap();
    let padded = format!("{encrypted}=");
    assert_eq!(ring.decrypt(&padded).unwrap(), json!("x"));
}

#[test]
fn an_older_key_still_decrypts() {
    let ring = fixed_ring();
    let encrypted = ring
        .encrypt(Some("old"), &json!({"mrn": "MRN-0012345"}))
        .unwrap();
    assert!(encrypted.starts_with("enc:v1:old:"));
    assert_eq!(
        ring.decrypt(&encrypted).unwrap(),
        json!({"mrn": "MRN-0012345"})
    );
}

#[test]
fn the_newest_key_is_the_default_and_ties_go_to_the_last() {
    assert_eq!(fixed_ring().default_id(), Some("new"));

    let entry = |id: &str| {
        json!({"id": id, "created_at": "2026-01-01T00:00:00Z",
               "aes": STANDARD.encode([0u8; 32]), "hmac": STANDARD.encode([0u8; 32])})
    };
    let text = json!({"keys": [entry("a"), entry("b"), entry("c")]}).to_string();
    let ring = KeyRing::from_entries(parse_key_file(&text).unwrap());
    assert_eq!(ring.default_id(), Some("c"));
    assert_eq!(ring.ids().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(ring.contains("b"));
    assert!(!ring.contains("d"));
}

#[test]
fn altered_values_do_not_decrypt() {
    let ring = fixed_ring();
    let encrypted = ring.encrypt(None, &json!("secret")).unwrap();

    // Flip one bit of every byte position in turn, through the base64 text.
    let (prefix, body) = encrypted.rsplit_once(':').unwrap();
    let bytes = BASE64URL.decode(body).unwrap();
    for position in 0..bytes.len() {
        let mut altered = bytes.clone();
        altered[position] ^= 0x01;
        let text = format!("{prefix}:{}", BASE64URL.encode(&altered));
        assert!(
            matches!(ring.decrypt(&text), Err(KeyError::DecryptionFailed)),
            "byte {position}"
        );
    }

    // The prefix is bound: the same body under another key id fails.
    let moved = encrypted.replacen("enc:v1:new:", "enc:v1:old:", 1);
    assert!(matches!(
        ring.decrypt(&moved),
        Err(KeyError::DecryptionFailed)
    ));

    let truncated = &encrypted[..encrypted.len() - 4];
    assert!(matches!(
        ring.decrypt(truncated),
        Err(KeyError::DecryptionFailed)
    ));
    let not_base64 = format!("{prefix}:!!!");
    assert!(matches!(
        ring.decrypt(&not_base64),
        Err(KeyError::DecryptionFailed)
    ));
}

#[test]
fn wrong_prefixes_and_unknown_keys_are_refused() {
    let ring = fixed_ring();
    let encrypted = ring.encrypt(None, &json!(1)).unwrap();
    let cases = [
        encrypted.replacen("enc:v1:", "enc:v2:", 1),
        encrypted.replacen("enc:v1:", "ENC:v1:", 1),
        "enc:v1:new".to_string(),
        "enc:v1::abc".to_string(),
        "plain text".to_string(),
    ];
    for case in &cases {
        assert!(
            matches!(ring.decrypt(case), Err(KeyError::BadFormat { .. })),
            "{case}"
        );
    }

    let hashed = ring.hash(None, &json!(1)).unwrap();
    let error = ring.decrypt(&hashed).unwrap_err();
    assert!(error.to_string().contains("one-way"), "{error}");

    let unknown = encrypted.replacen("enc:v1:new:", "enc:v1:gone:", 1);
    assert!(matches!(
        ring.decrypt(&unknown),
        Err(KeyError::UnknownKey { id }) if id == "gone"
    ));
    assert!(matches!(
        ring.encrypt(Some("gone"), &json!(1)),
        Err(KeyError::UnknownKey { .. })
    ));
}

#[test]
fn hashing_is_deterministic_and_depends_on_the_key() {
    let ring = fixed_ring();
    let value = json!({"b": 1, "a": "Ada"});
    let first = ring.hash(None, &value).unwrap();
    assert_eq!(first, ring.hash(None, &value).unwrap());
    assert_eq!(first, ring.hash(Some("new"), &value).unwrap());
    assert!(first.starts_with("hmac:v1:new:"), "{first}");
    // 32-byte digest: 43 base64 characters without padding.
    assert_eq!(first.rsplit(':').next().unwrap().len(), 43);

    let other_key = ring.hash(Some("old"), &value).unwrap();
    assert_ne!(
        first["hmac:v1:new:".len()..],
        other_key["hmac:v1:old:".len()..]
    );
    assert_ne!(first, ring.hash(None, &json!("Ada")).unwrap());
    // `1` and `"1"` are different values.
    assert_ne!(
        ring.hash(None, &json!(1)).unwrap(),
        ring.hash(None, &json!("1")).unwrap()
    );

    // Member order does not change the pseudonym. This fails if
    // serde_json's `preserve_order` feature gets turned on somewhere.
    let reordered: Value = serde_json::from_str(r#"{"a": "Ada", "b": 1}"#).unwrap();
    assert_eq!(first, ring.hash(None, &reordered).unwrap());
}

#[test]
fn hmac_matches_the_rfc_4231_construction() {
    // HMAC-SHA-256 of the JSON text `"what do ya want for nothing?"` under
    // the key "Jefe" padded to 32 bytes is computed independently here, so
    // the value format is pinned to plain HMAC-SHA-256 over the JSON text.
    let mut key = [0u8; KEY_LEN];
    key[..4].copy_from_slice(b"Jefe");
    let text = json!({"keys": [{"id": "k", "created_at": "2026-01-01T00:00:00Z",
        "aes": STANDARD.encode([0u8; 32]), "hmac": STANDARD.encode(key)}]})
    .to_string();
    let ring = KeyRing::from_entries(parse_key_file(&text).unwrap());
    let hashed = ring
        .hash(None, &json!("what do ya want for nothing?"))
        .unwrap();

    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(br#""what do ya want for nothing?""#);
    let expected = BASE64URL.encode(mac.finalize().into_bytes());
    assert_eq!(hashed, format!("hmac:v1:k:{expected}"));
}

#[test]
fn an_empty_ring_has_no_default() {
    let ring = KeyRing::from_entries(parse_key_file(r#"{"keys": []}"#).unwrap());
    assert!(ring.is_empty());
    assert_eq!(ring.default_id(), None);
    assert!(matches!(
        ring.encrypt(None, &json!(1)),
        Err(KeyError::NoKeys)
    ));
    assert!(matches!(ring.hash(None, &json!(1)), Err(KeyError::NoKeys)));
}

#[test]
fn ephemeral_rings_hold_one_random_key() {
    let first = KeyRing::ephemeral();
    let second = KeyRing::ephemeral();
    assert_eq!(first.default_id(), Some(EPHEMERAL_ID));
    let value = json!("x");
    assert_ne!(
        first.hash(None, &value).unwrap(),
        second.hash(None, &value).unwrap()
    );
    let encrypted = first.encrypt(None, &value).unwrap();
    assert_eq!(first.decrypt(&encrypted).unwrap(), value);
    assert!(second.decrypt(&encrypted).is_err());
}

#[test]
fn generate_creates_extends_and_protects_the_file() {
    let dir = temp_dir("generate");
    let path = dir.join("nested/data/keys.json");

    let first = KeyRing::generate_into(&path).unwrap();
    assert!(first.starts_with('k') && first.ends_with('Z'), "{first}");
    assert_eq!(first.len(), "k20261203T174500Z".len());
    let ring = KeyRing::load(&path).unwrap();
    assert_eq!(ring.ids().collect::<Vec<_>>(), [first.as_str()]);
    let encrypted = ring.encrypt(None, &json!({"name": "Ada"})).unwrap();

    let second = KeyRing::generate_into(&path).unwrap();
    assert_ne!(first, second);
    let ring = KeyRing::load(&path).unwrap();
    assert_eq!(
        ring.ids().collect::<Vec<_>>(),
        [first.as_str(), second.as_str()]
    );
    assert_eq!(ring.default_id(), Some(second.as_str()));
    assert_eq!(ring.decrypt(&encrypted).unwrap(), json!({"name": "Ada"}));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keys.json"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn generate_refuses_to_overwrite_a_malformed_file() {
    let dir = temp_dir("malformed");
    let path = dir.join("keys.json");
    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        KeyRing::generate_into(&path),
        Err(KeyError::Malformed { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn malformed_key_files_are_explained_without_their_contents() {
    let canary = "Q0FOQVJZLWtleS1tYXRlcmlhbA==";
    let cases = [
        (r#"[]"#.to_string(), "`keys` array"),
        (r#"{"keys": 5}"#.to_string(), "`keys` array"),
        (
            format!(
                r#"{{"keys": [{{"id": "a", "created_at": "2026-01-01T00:00:00Z", "aes": "{canary}", "hmac": "{canary}"}}]}}"#
            ),
            "`aes` must be 32 bytes",
        ),
        (
            format!(
                r#"{{"keys": [{{"id": "a:b", "created_at": "2026-01-01T00:00:00Z", "aes": "{canary}", "hmac": "{canary}"}}]}}"#
            ),
            "`id` must be",
        ),
        (
            format!(
                r#"{{"keys": [{{"id": "a", "created_at": "{canary}", "aes": "{canary}", "hmac": "{canary}"}}]}}"#
            ),
            "`created_at` must be",
        ),
        (
            format!(
                r#"{{"keys": [{{"id": "a", "created_at": "2026-01-01T00:00:00Z", "aes": 7, "hmac": "{canary}"}}]}}"#
            ),
            "`aes` must be a string",
        ),
        (r#"{"keys": [{"id": "a""#.to_string(), "not valid JSON"),
    ];
    for (text, expected) in cases {
        let reason = parse_key_file(&text).err().expect(expected);
        assert!(reason.contains(expected), "{reason}");
        assert!(!reason.contains(canary), "{reason}");
        assert!(!reason.contains("Q0FO"), "{reason}");
    }

    let twice = json!({"keys": [
        {"id": "a", "created_at": "2026-01-01T00:00:00Z", "aes": STANDARD.encode([0u8; 32]), "hmac": STANDARD.encode([0u8; 32])},
        {"id": "a", "created_at": "2026-01-02T00:00:00Z", "aes": STANDARD.encode([0u8; 32]), "hmac": STANDARD.encode([0u8; 32])},
    ]})
    .to_string();
    assert!(parse_key_file(&twice).err().unwrap().contains("used twice"));
}

#[test]
fn no_key_bytes_or_plaintext_reach_debug_display_or_errors() {
    // The key bytes spell a canary; neither they nor their base64 may show.
    let canary = *b"CANARY-KEY-MATERIAL-0123456789ab";
    let text = json!({"keys": [{"id": "k1", "created_at": "2026-01-01T00:00:00Z",
        "aes": STANDARD.encode(canary), "hmac": STANDARD.encode(canary)}]})
    .to_string();
    let ring = KeyRing::from_entries(parse_key_file(&text).unwrap());
    let secret = json!("PLAINTEXT-CANARY");
    let encrypted = ring.encrypt(None, &secret).unwrap();

    let mut outputs = vec![format!("{ring:?}"), format!("{:#?}", ring.clone())];
    let errors = [
        ring.decrypt(&encrypted.replacen("enc:v1:k1:", "enc:v1:k1:AA", 1)),
        ring.decrypt("PLAINTEXT-CANARY"),
        ring.decrypt(&encrypted.replacen("enc:v1:k1:", "enc:v1:k2:", 1)),
    ];
    for error in errors {
        let error = error.unwrap_err();
        outputs.push(error.to_string());
        outputs.push(format!("{error:?}"));
    }
    let mut forms = vec![
        String::from_utf8_lossy(&canary).into_owned(),
        STANDARD.encode(canary),
        BASE64URL.encode(canary),
        "PLAINTEXT-CANARY".to_string(),
    ];
    // The bytes as a derived `Debug` of an array would print them.
    forms.push("67, 65, 78, 65, 82, 89".to_string());
    for output in &outputs {
        for form in &forms {
            assert!(!output.contains(form.as_str()), "{output} shows {form}");
        }
    }
    assert!(outputs[0].contains("k1"), "{}", outputs[0]);
}

#[test]
fn timestamps_parse_rfc_3339_and_print_utc() {
    let cases = [
        ("2026-12-03T17:45:00Z", Some("2026-12-03T17:45:00Z")),
        ("2026-12-03t17:45:00z", Some("2026-12-03T17:45:00Z")),
        ("2026-12-03T18:45:00+01:00", Some("2026-12-03T17:45:00Z")),
        ("2026-12-03T17:45:00.123456Z", Some("2026-12-03T17:45:00Z")),
        ("2024-02-29T00:00:00Z", Some("2024-02-29T00:00:00Z")),
        ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00Z")),
        ("2023-02-29T00:00:00Z", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-12-03T24:00:00Z", None),
        ("2026-12-03T17:45:00", None),
        ("2026-12-03T17:45:00.Z", None),
        ("2026-12-03", None),
        ("", None),
    ];
    for (text, expected) in cases {
        let parsed = Timestamp::parse(text).map(Timestamp::to_rfc3339);
        assert_eq!(parsed.as_deref(), expected, "{text}");
    }
    let at = Timestamp::parse("2026-12-03T17:45:00Z").unwrap();
    assert_eq!(at.compact(), "20261203T174500Z");
    assert!(at < Timestamp::parse("2026-12-03T17:45:00.5Z").unwrap());
}

#[test]
fn named_keys_are_added_once_and_leave_the_default_alone() {
    let path = temp_dir("named").join("keys.json");
    assert!(KeyRing::generate_named_into(&path, "patients").unwrap());
    assert_eq!(
        KeyRing::load(&path).unwrap().default_id(),
        Some("patients"),
        "the only key is the default"
    );

    let default = KeyRing::generate_into(&path).unwrap();
    assert!(KeyRing::generate_named_into(&path, "billing").unwrap());
    assert!(!KeyRing::generate_named_into(&path, "billing").unwrap());
    let ring = KeyRing::load(&path).unwrap();
    assert_eq!(ring.ids().count(), 3);
    assert_eq!(ring.default_id(), Some(default.as_str()));

    assert!(matches!(
        KeyRing::generate_named_into(&path, "no:colons"),
        Err(KeyError::BadFormat { .. })
    ));
}
