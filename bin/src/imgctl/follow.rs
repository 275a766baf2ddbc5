//! Following an import as it runs: live per-blob progress bars on a terminal, one line per change of
//! state elsewhere, and the API's progress documents, one per change, for scripts.

use std::{collections::HashMap, time::Duration};

use api_client::{ImportProgress, LayerBytes};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How an import is shown while it runs.
pub enum View {
    /// Progress bars with bytes, rate and time left (standard output is a terminal).
    Bars(Box<Bars>),
    /// One line per change of status, attempt or completed layers.
    Lines { last: Option<(String, i32, usize, usize)> },
    /// Each changed progress document: JSON on one line, or a YAML document after `---`.
    Documents { yaml: bool },
}

impl View {
    pub fn new(id: i64, documents: Option<bool>, terminal: bool, colour: bool) -> View {
        match documents {
            Some(yaml) => View::Documents { yaml },
            None if terminal => View::Bars(Box::new(Bars::new(id, colour))),
            None => View::Lines { last: None },
        }
    }

    pub fn update(&mut self, progress: &ImportProgress, json: &serde_json::Value) {
        match self {
            View::Bars(bars) => bars.update(progress),
            View::Lines { last } => {
                let (completed, layers) = progress.layers_completed();
                let key = (progress.state.clone(), progress.attempts, completed, layers);
                if last.as_ref() == Some(&key) {
                    return;
                }
                println!("{}", line(progress));
                *last = Some(key);
            }
            View::Documents { yaml: false } => println!("{json}"),
            View::Documents { yaml: true } => {
                println!("---");
                crate::output::document(json, true);
            }
        }
    }

    /// Stops drawing, leaving what was drawn on the screen.
    pub fn finish(&mut self) {
        if let View::Bars(bars) = self {
            bars.finish();
        }
    }
}

/// The non-terminal line for one state: `import 7: running, attempt 1/3, 2/5 layers, 1.2 MB/3.4 MB`.
pub fn line(p: &ImportProgress) -> String {
    let (completed, layers) = p.layers_completed();
    let mut text =
        format!("import {}: {}, attempt {}/{}, {completed}/{layers} layers", p.id, p.state, p.attempts, p.max_attempts);
    if p.size > 0 {
        text.push_str(&format!(", {}/{}", crate::output::size(p.done), crate::output::size(p.size)));
    }
    if let Some(message) = &p.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

pub struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    layers: HashMap<String, ProgressBar>,
    style: ProgressStyle,
    done_style: ProgressStyle,
}

impl Bars {
    fn new(id: i64, colour: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(10));
        let header = multi.add(ProgressBar::new_spinner());
        header.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
        header.set_message(format!("import {id}"));
        header.enable_steady_tick(Duration::from_millis(120));
        let bar = if colour { "{bar:30.cyan/blue}" } else { "{bar:30}" };
        let style = ProgressStyle::with_template(&format!(
            "  {{prefix}} {bar} {{bytes:>10}}/{{total_bytes:<10}} {{bytes_per_sec:>12}} ETA {{eta}} {{msg}}"
        ))
        .expect("template")
        .progress_chars("=> ");
        let done_style = ProgressStyle::with_template(&format!("  {{prefix}} {bar} {{total_bytes:>10}} {{msg}}"))
            .expect("template")
            .progress_chars("=> ");
        Bars { multi, header, layers: HashMap::new(), style, done_style }
    }

    fn update(&mut self, p: &ImportProgress) {
        self.header.set_message(format!(
            "import {} {} → {}: {}, attempt {}/{}{}",
            p.id,
            p.source,
            p.target,
            p.state,
            p.attempts,
            p.max_attempts,
            p.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        ));
        for layer in &p.layers {
            let bar = self.layers.entry(layer.digest.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(layer.size));
                bar.set_style(self.style.clone());
                bar.set_prefix(short_digest(&layer.digest));
                bar
            });
            show_layer(bar, layer, &self.done_style);
        }
        if p.is_finished() {
            self.header.finish_with_message(format!(
                "import {} {} → {}: {}{}",
                p.id,
                p.source,
                p.target,
                p.state,
                p.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
    }

    fn finish(&mut self) {
        for bar in self.layers.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        if !self.header.is_finished() {
            self.header.abandon();
        }
    }
}

fn show_layer(bar: &ProgressBar, layer: &LayerBytes, done_style: &ProgressStyle) {
    if bar.is_finished() {
        return;
    }
    bar.set_length(layer.size);
    bar.set_position(layer.done);
    match layer.state.as_str() {
        "completed" => {
            bar.set_style(done_style.clone());
            bar.finish_with_message(layer.via.clone().unwrap_or_else(|| "completed".into()));
        }
        "failed" => bar.abandon_with_message("failed"),
        "waiting" => bar.set_message("waiting"),
        _ => bar.set_message(""),
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`, as image tools print digests.
fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(state: &str, message: Option<&str>) -> ImportProgress {
        ImportProgress {
            id: 7,
            source: "registry.example/app:1".into(),
            target: "127.0.0.1:5000/registry.example/app:1".into(),
            state: state.into(),
            status: if state == "running" { "importing".into() } else { "ready".into() },
            attempts: 1,
            max_attempts: 3,
            message: message.map(str::to_owned),
            digest: None,
            size: 3_000_000,
            done: 1_500_000,
            layers: vec![
                LayerBytes {
                    digest: format!("sha256:{}", "ab".repeat(32)),
                    size: 1_000_000,
                    done: 1_000_000,
                    state: "completed".into(),
                    via: Some("copied".into()),
                },
                LayerBytes {
                    digest: format!("sha256:{}", "cd".repeat(32)),
                    size: 2_000_000,
                    done: 500_000,
                    state: "downloading".into(),
                    via: None,
                },
            ],
        }
    }

    #[test]
    fn a_line_names_the_state_attempt_layers_and_bytes() {
        assert_eq!(line(&progress("running", None)), "import 7: running, attempt 1/3, 1/2 layers, 1.5MB/3.0MB");
        assert_eq!(
            line(&progress("failed", Some("manifest unknown"))),
            "import 7: failed, attempt 1/3, 1/2 layers, 1.5MB/3.0MB: manifest unknown"
        );
    }

    #[test]
    fn digests_are_shortened_as_image_tools_print_them() {
        assert_eq!(short_digest(&format!("sha256:{}", "0123456789abcdef".repeat(4))), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }
}
