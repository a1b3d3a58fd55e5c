//! The `slabcached` binary: parse memcached's flags (after those of a `--config-file`),
//! validate, bind, serve.

#![deny(unsafe_code)]

use clap::Parser;
use slabcached::{sys, Args, Config, Server};

fn main() {
    let argv = match slabcached::conffile::expand(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("slabcached: {e}");
            std::process::exit(1);
        }
    };
    let args = Args::parse_from(argv);
    if args.license {
        println!("slabcached {}: MIT licensed.", env!("CARGO_PKG_VERSION"));
        return;
    }
    let level = match args.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    // A panic anywhere is a bug; stopping the whole process beats serving half a cache.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(70);
    }));

    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    if let Err(e) = start(config) {
        eprintln!("slabcached: {e}");
        std::process::exit(1);
    }
}

fn start(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    sys::raise_fd_limit(config.max_connections as u64 + 64);
    let daemon = config.daemon;
    let pidfile = config.pidfile.clone();
    let user = config.user.clone();
    // Before binding: once a socket listens, a SIGHUP (cluster reload) may arrive, and the
    // default action would kill the process. The handlers only set flags.
    sys::install_signal_handlers()?;
    let server = Server::bind(config)?;
    if daemon {
        sys::daemonize()?;
    }
    if let Some(user) = user {
        if sys::is_root() {
            sys::drop_privileges(&user)?;
        }
    } else if sys::is_root() {
        log::info!("running as root (memcached would require -u)");
    }
    if let Some(path) = &pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
    }
    let result = server.run();
    if let Some(path) = &pidfile {
        let _ = std::fs::remove_file(path);
    }
    result.map_err(Into::into)
}
