//! Configuration: layering, defaults, checks, redaction.

use super::*;

fn cli(args: &[&str]) -> Cli {
    Cli::load(std::iter::once("mailconnect").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_need_nothing() {
    let c = Config::resolve(cli(&[])).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8910");
    assert_eq!(c.mcp_url(), "http://127.0.0.1:8910/mcp");
    assert_eq!(c.upstream.jmap_session_url.as_str(), FASTMAIL_SESSION_URL);
    assert!(c.server.self_host.is_none());
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = Config::resolve(cli(&[
        "--public-url",
        "http://mail.example.com",
        "--self-host-token",
        "short",
        "--upstream-username",
        "alice",
        "--tool-timeout-secs",
        "0",
    ]))
    .unwrap_err();
    assert_eq!(err.0.len(), 4, "{err}");
    assert!(err.to_string().contains("https"), "{err}");
}

#[test]
fn file_values_apply_under_flags() {
    let dir = std::env::temp_dir().join(format!("mc-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\ntool_timeout_secs = 5\n",
    )
    .unwrap();
    let c = Config::resolve(cli(&[
        "--config",
        path.to_str().unwrap(),
        "--tool-timeout-secs",
        "7",
    ]))
    .unwrap();
    assert_eq!(
        (c.server.listen.port(), c.limits.tool_timeout.as_secs()),
        (9000, 7)
    );
    std::fs::write(&path, "listne = 1\n").unwrap();
    assert!(Config::resolve(cli(&["--config", path.to_str().unwrap()])).is_err());
}

#[test]
fn background_needs_a_key_file_outside_the_data_directory() {
    let err = Config::resolve(cli(&["--notify-background"])).unwrap_err();
    assert!(err.to_string().contains("notifier_key_file"), "{err}");
    let dir = std::env::temp_dir().join(format!("mc-bg-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for inner in [
        data.join("notifier.key"),
        dir.join("data/../data/sub/notifier.key"),
    ] {
        let err = Config::resolve(cli(&[
            "--notify-background",
            "--data-dir",
            data.to_str().unwrap(),
            "--notifier-key-file",
            inner.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("outside the data directory"),
            "{err}"
        );
    }
    let c = Config::resolve(cli(&[
        "--notify-background",
        "--data-dir",
        data.to_str().unwrap(),
        "--notifier-key-file",
        dir.join("notifier.key").to_str().unwrap(),
    ]))
    .unwrap();
    let bg = c.notify.background.unwrap();
    assert_eq!(bg.poke_api_base.as_str(), "https://poke.com/");
    assert!(!bg.allow_private_destinations);
    assert!(
        Config::resolve(cli(&[]))
            .unwrap()
            .notify
            .background
            .is_none()
    );
}

#[test]
fn debug_never_prints_secrets() {
    let c = Config::resolve(cli(&[
        "--self-host-token",
        "0123456789abcdef-token",
        "--upstream-bearer-token",
        "upstream-secret",
    ]))
    .unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("0123456789abcdef-token") && !shown.contains("upstream-secret"));
}

/// The file is a layer under the command line: its values count unless a flag gives the
/// setting (a list is replaced, not added to); a boolean switch and `[[clients]]` read from it;
/// a wrong value is told as the file's, with every other problem.
#[test]
fn the_file_is_a_layer_under_the_command_line() {
    let dir = std::env::temp_dir().join(format!("mc-layer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    let config = |text: &str, flags: &[&str]| {
        std::fs::write(&path, text).unwrap();
        let mut args = vec!["--config", path.to_str().unwrap()];
        args.extend(flags);
        Config::resolve(cli(&args))
    };
    let c = config(
        "allowed_hosts = [\"a.example\", \"b.example\"]\nupstream_client_secret = \"file-secret\"\n\
         [[clients]]\nid = \"c1\"\nname = \"One\"\nredirect_uris = [\"https://one.example/cb\"]\n",
        &["--allowed-hosts", "c.example"],
    )
    .unwrap();
    assert!(c.server.allowed_hosts.contains(&"c.example".to_owned()));
    assert!(!c.server.allowed_hosts.contains(&"a.example".to_owned()));
    assert_eq!(
        c.upstream
            .oauth
            .client_secret
            .as_ref()
            .map(SecretString::expose_secret),
        Some("file-secret")
    );
    assert_eq!(c.server.clients.len(), 1);
    assert_eq!(
        c.server.clients[0].auth_method,
        crate::domain::auth::client::TokenAuthMethod::None
    );

    let err = config("notify_background = true\n", &[]).unwrap_err();
    assert!(err.to_string().contains("notifier_key_file"), "{err}");
    let err = config(
        "listen = \"not an address\"\ntest_allow_private_destinations = true\n\
         [[clients]]\nid = \"c2\"\nname = \"Two\"\nredirect_uris = [\"https://two.example/cb\"]\nauth_method = \"client_secret_post\"\n",
        &["--tool-timeout-secs", "0"],
    )
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.0.len(), 4, "{text}");
    for needle in [
        "invalid value 'not an address' for '--listen",
        "unknown setting \"test_allow_private_destinations\"",
        "auth_method \"client_secret_post\" does not fit the secret",
        "tool_timeout_secs must be between 1 and 600",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// A command line parsed without `Cli::load` would silently skip the file: refused instead.
#[test]
fn a_config_file_without_the_loader_is_refused() {
    use clap::Parser as _;
    let err = Config::resolve(Cli::parse_from(["mailconnect", "--config", "x.toml"])).unwrap_err();
    assert!(err.to_string().contains("Cli::load"), "{err}");
}

/// Secrets are typed from the command line on: `Debug` of the parsed flags shows none.
#[test]
fn parsed_flags_never_print_secrets() {
    let flags = cli(&["--upstream-client-secret", "flag-secret-value"]);
    assert!(!format!("{flags:?}").contains("flag-secret-value"));
}
