//! The terminal: prompts (the password without echo) and the progress line.

use std::fs::File;
use std::io::{BufRead as _, BufReader, IsTerminal as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use crate::error::Error;

fn open_tty() -> Result<File, Error> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").map_err(|e| {
        Error::Usage(format!("cannot open the terminal to ask ({e}); use --password-stdin or JOBS_PASSWORD"))
    })
}

fn read_line(tty: &File) -> Result<String, Error> {
    let mut line = String::new();
    BufReader::new(tty).read_line(&mut line).map_err(|e| Error::Io(format!("cannot read the terminal: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Asks on the terminal, echoing the answer.
pub fn prompt(question: &str) -> Result<String, Error> {
    let mut tty = open_tty()?;
    write!(tty, "{question}").and_then(|_| tty.flush()).map_err(|e| Error::Io(e.to_string()))?;
    read_line(&tty)
}

/// Asks on the terminal with echo off; echo is restored whatever happens.
pub fn prompt_hidden(question: &str) -> Result<String, Error> {
    let mut tty = open_tty()?;
    let fd = tty.as_raw_fd();
    let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: fd is an open terminal; tcgetattr fills the struct on success.
    if unsafe { libc::tcgetattr(fd, saved.as_mut_ptr()) } != 0 {
        return Err(Error::Usage("cannot turn off echo on the terminal; use --password-stdin".into()));
    }
    // SAFETY: initialized by the successful tcgetattr above.
    let saved = unsafe { saved.assume_init() };
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    write!(tty, "{question}").and_then(|_| tty.flush()).map_err(|e| Error::Io(e.to_string()))?;
    // SAFETY: valid fd and termios.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let answer = read_line(&tty);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    answer
}

/// The waiting indicator on stderr: a spinner with the elapsed time that
/// rewrites one line on a terminal; otherwise a plain line when the status
/// changes and every `PLAIN_EVERY`.
pub struct Progress {
    tty: bool,
    frame: usize,
    last_plain: Option<(String, Duration)>,
    drawn: bool,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const PLAIN_EVERY: Duration = Duration::from_secs(15);

impl Progress {
    pub fn new() -> Progress {
        Progress { tty: std::io::stderr().is_terminal(), frame: 0, last_plain: None, drawn: false }
    }

    pub fn update(&mut self, text: &str, elapsed: Duration) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            let spin = SPINNER[self.frame % SPINNER.len()];
            self.frame += 1;
            let seconds = format!(" ({}s)", elapsed.as_secs());
            // One line that fits: a wrapped line could not be rewritten in place.
            let room = terminal_width().saturating_sub(3 + seconds.len());
            let _ = write!(err, "\r\x1b[2K{spin} {}{seconds}", fit(text, room));
            self.drawn = true;
        } else if plain_due(self.last_plain.as_ref(), text, elapsed) {
            let _ = writeln!(err, "{text} ({}s)", elapsed.as_secs());
            self.last_plain = Some((text.to_string(), elapsed));
        }
        let _ = err.flush();
    }

    /// Clears the spinner line.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// The terminal's width on stderr, else 80.
fn terminal_width() -> usize {
    let mut size = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ fills a winsize; on failure it is left zeroed.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, size.as_mut_ptr()) } == 0;
    // SAFETY: zero-initialized, possibly filled by the ioctl.
    let cols = unsafe { size.assume_init() }.ws_col as usize;
    if ok && cols > 0 { cols } else { 80 }
}

/// `text` cut to `width` characters, an ellipsis marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn plain_due(last: Option<&(String, Duration)>, text: &str, elapsed: Duration) -> bool {
    match last {
        None => true,
        Some((last_text, at)) => last_text != text || elapsed.saturating_sub(*at) >= PLAIN_EVERY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinner_text_fits_the_terminal() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("exactly10!", 10), "exactly10!");
        assert_eq!(fit("a longer line", 6), "a lon…");
        assert_eq!(fit("x", 0), "");
    }

    #[test]
    fn plain_lines_on_change_or_periodically() {
        let s = Duration::from_secs;
        assert!(plain_due(None, "a", s(0)));
        let last = ("a".to_string(), s(1));
        assert!(!plain_due(Some(&last), "a", s(5)));
        assert!(plain_due(Some(&last), "b", s(5)));
        assert!(plain_due(Some(&last), "a", s(16)));
    }
}
