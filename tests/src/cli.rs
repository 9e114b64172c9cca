//! The `eenplan` command line as the end-to-end tests drive it: one data directory,
//! enrolled with the test network, run as a real process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::network::Network;

/// The `eenplan` command line on one data directory, enrolled with the test network.
#[derive(Debug)]
pub struct Cli {
    pub data: std::path::PathBuf,
}

impl Cli {
    pub fn enrolled(net: &Network, name: &str, user: &str) -> Cli {
        let cli = Cli { data: net.path(name) };
        cli.ok(&["init"]);
        let code = net.admin.run(&["device", "enrol", "--user", user]);
        cli.ok(&[
            "enrol",
            "--server",
            &net.server.url,
            "--code",
            code.trim(),
            "--name",
            &format!("Laptop van {user}"),
        ]);
        net.admin.run(&["device", "approve", "--code", code.trim()]);
        cli.ok(&["sync"]);
        cli
    }

    /// The command for `args`, to run or to spawn (and kill).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(crate::network::binary("eenplan"));
        command
            .args(args)
            .env("EENPLAN_DATA", &self.data)
            .env("EENPLAN_PASSPHRASE", "correct horse battery staple")
            .env("EENPLAN_INSECURE_FAST_KDF", "1")
            .stdin(std::process::Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "eenplan {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    pub fn names(value: &serde_json::Value) -> Vec<String> {
        let mut names: Vec<String> =
            value.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
        names.sort();
        names
    }
}
