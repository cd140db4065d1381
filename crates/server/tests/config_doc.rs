//! docs/configuration.md documents every setting, with the same environment variable and
//! default as the code.

use tokengate_server::config::SETTINGS;

#[test]
fn every_setting_is_documented() {
    let doc = include_str!("../../../docs/configuration.md");
    for s in SETTINGS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", s.key)))
            .unwrap_or_else(|| panic!("docs/configuration.md has no row for `{}`", s.key));
        assert!(
            row.contains(&format!("`{}`", s.env)),
            "row for {} lacks {}",
            s.key,
            s.env
        );
        assert!(
            row.contains(s.default),
            "row for {} lacks default {:?}",
            s.key,
            s.default
        );
    }
}
