//! Start-up validation of a large generated configuration.
//!
//! One generated extension declares N/10 signals and N handlers; the generated TOML connects
//! each signal to 10 of the handlers, each handler to exactly one signal, for N = 100, 1,000 and
//! 10,000 (the headline: 1,000 signals and 10,000 handlers must validate in well under 100 ms).
//!
//! Per N, two measurements (throughput in handlers, so that per-handler cost is visible):
//!
//! - `wiring/parse_validate_build/N`: `Config::from_toml(text)` and
//!   `Coordinator::builder().extension(..).config(..).build()`: parse, collect the declarations,
//!   validate and compile the wiring.
//! - `wiring/build_from_parsed/N`: the same build from an already parsed `Config` (cloned outside
//!   the timing).
//!
//! The built coordinators are dropped outside the timing.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use coordinator::prelude::*;
use coordinator::{Config, Coordinator};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// The payload every generated signal carries.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Generated {
    /// Anything.
    pub n: u64,
}

const EXTENSION: &str = "generated";
const HANDLERS_PER_SIGNAL: usize = 10;

async fn noop(_event: Event<Generated>) -> Result<(), HandlerError> {
    Ok(())
}

/// One extension declaring every generated signal and handler.
#[derive(Clone, Copy)]
struct GeneratedExtension {
    signals: &'static [&'static Signal<Generated>],
    handlers: &'static [&'static str],
}

impl Extension for GeneratedExtension {
    fn name(&self) -> &'static str {
        EXTENSION
    }

    fn build(&self, ext: &mut ExtensionBuilder<'_>) {
        for signal in self.signals {
            ext.signal(*signal);
        }
        for handler in self.handlers {
            ext.handler(handler, "A generated handler that does nothing.", noop);
        }
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The extension and the TOML text for `handlers` handlers over `handlers / 10` signals.
fn generate(handlers: usize) -> (GeneratedExtension, String) {
    let n_signals = handlers / HANDLERS_PER_SIGNAL;
    let mut signals = Vec::with_capacity(n_signals);
    let mut names = Vec::with_capacity(handlers);
    let mut toml = String::from("[timeouts]\nhandler = \"5s\"\n\n[signals]\n");
    for s in 0..n_signals {
        let signal: &'static Signal<Generated> = Box::leak(Box::new(Signal::new(
            leak(format!("{EXTENSION}.order_{s:05}_placed")),
            "A generated signal.",
        )));
        signals.push(signal);
        write!(toml, "\"{}\" = [", signal.name()).expect("writing to a String");
        for h in 0..HANDLERS_PER_SIGNAL {
            let name = leak(format!("{EXTENSION}.fulfill_order_{s:05}_{h}"));
            names.push(name);
            let sep = if h + 1 < HANDLERS_PER_SIGNAL {
                ", "
            } else {
                ""
            };
            write!(toml, "\"{name}\"{sep}").expect("writing to a String");
        }
        toml.push_str("]\n");
    }
    let extension = GeneratedExtension {
        signals: Box::leak(signals.into_boxed_slice()),
        handlers: Box::leak(names.into_boxed_slice()),
    };
    (extension, toml)
}

fn build(extension: GeneratedExtension, config: Config) -> Coordinator {
    Coordinator::builder()
        .extension(extension)
        .config(config)
        .build()
        .unwrap_or_else(|e| panic!("the generated wiring is invalid: {e}"))
}

/// Builds once and fails loudly unless every signal reaches its 10 handlers.
fn check(extension: GeneratedExtension, text: &str) {
    let config = Config::from_toml(text).expect("the generated TOML parses");
    assert_eq!(config.signals.len(), extension.signals.len());
    let coordinator = build(extension, config);
    assert!(
        coordinator.warnings().is_empty(),
        "unexpected warnings: {:?}",
        &coordinator.warnings()[..coordinator.warnings().len().min(5)]
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime");
    let context = coordinator.context(EXTENSION);
    for signal in [
        extension.signals[0],
        extension.signals[extension.signals.len() - 1],
    ] {
        let report = rt.block_on(context.send_robust(signal, Generated { n: 1 }));
        assert_eq!(report.handlers.len(), HANDLERS_PER_SIGNAL, "{report:?}");
        assert!(report.all_ok(), "{report:?}");
    }
}

fn wiring(c: &mut Criterion) {
    let mut g = c.benchmark_group("wiring");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [100, 1_000, 10_000] {
        let (extension, text) = generate(n);
        check(extension, &text);
        let parsed = Config::from_toml(&text).expect("the generated TOML parses");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("parse_validate_build", n),
            &text,
            |b, text| {
                b.iter_batched(
                    || (),
                    |()| {
                        let config = Config::from_toml(black_box(text)).expect("parses");
                        build(extension, config)
                    },
                    BatchSize::LargeInput,
                );
            },
        );
        g.bench_with_input(
            BenchmarkId::new("build_from_parsed", n),
            &parsed,
            |b, parsed| {
                b.iter_batched(
                    || parsed.clone(),
                    |config| build(extension, black_box(config)),
                    BatchSize::LargeInput,
                );
            },
        );
    }
    g.finish();
}

criterion_group!(benches, wiring);
criterion_main!(benches);
