//! The loyalty coordinator: the coordinator's command line (`serve`, `worker`, `check`, ...)
//! with the bundled extensions and this crate's.

use std::process::ExitCode;

fn main() -> ExitCode {
    coordinator_server::App::new()
        .extensions(coordinator_server::bundled())
        .extension(loyalty_coordinator::LoyaltyExtension)
        .default_config(
            "embedded default (examples/loyalty/loyalty.toml)",
            include_str!("../loyalty.toml"),
        )
        .run()
}
