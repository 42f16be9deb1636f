//! The shell's command language.
//!
//! ```text
//! list      := pipeline ((';' | '&') pipeline)* [';' | '&']
//! pipeline  := command ('|' command)*
//! command   := (word | redirect)+            at least one word
//! redirect  := ('<' | '>' | '>>') word
//! ```
//!
//! A newline separates like `;`. Words are runs of other characters; `'...'` quotes literally,
//! `"..."` quotes with `\"` and `\\` as escapes, and `\` outside quotes takes the next
//! character literally. `#` at the start of a word comments out the rest of the line.
//! A command's redirections apply after its pipe connections, so in `a > f | b` the output of
//! `a` goes to `f` (and `b` reads nothing), as in other shells.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One lexical token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Word(String),
    /// `|`
    Pipe,
    /// `<`
    Less,
    /// `>`
    Great,
    /// `>>`
    DoubleGreat,
    /// `&`
    Amp,
    /// `;`
    Semi,
    /// A newline: separates like `;`.
    Newline,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Word(w) => w,
            Token::Pipe => "|",
            Token::Less => "<",
            Token::Great => ">",
            Token::DoubleGreat => ">>",
            Token::Amp => "&",
            Token::Semi => ";",
            Token::Newline => "newline",
        }
    }
}

/// Why a line does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A quote without its closing one.
    UnterminatedQuote(char),
    /// A `\` at the very end of the line.
    TrailingBackslash,
    /// An operator where a command should start (or the line ended in `|`); the operator, or
    /// `"newline"`.
    Unexpected(String),
    /// `<`, `>` or `>>` not followed by a word.
    MissingFile(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnterminatedQuote(q) => write!(f, "unterminated {q} quote"),
            ParseError::TrailingBackslash => f.write_str("\\ at the end of the line"),
            ParseError::Unexpected(t) => write!(f, "syntax error near {t}"),
            ParseError::MissingFile(op) => write!(f, "{op} needs a file name"),
        }
    }
}

/// Splits a line into tokens.
pub fn tokenize(line: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    // The word being built; `Some` once anything (even `""`) started it.
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' => flush(&mut word, &mut tokens),
            '\n' | ';' | '&' | '|' | '<' | '>' => {
                flush(&mut word, &mut tokens);
                tokens.push(match c {
                    '|' => Token::Pipe,
                    '<' => Token::Less,
                    '&' => Token::Amp,
                    '>' if chars.peek() == Some(&'>') => {
                        chars.next();
                        Token::DoubleGreat
                    }
                    '>' => Token::Great,
                    '\n' => Token::Newline,
                    _ => Token::Semi,
                });
            }
            '#' if word.is_none() => {
                // A comment: skip to the end of the line (the newline itself still separates).
                for c in chars.by_ref() {
                    if c == '\n' {
                        tokens.push(Token::Newline);
                        break;
                    }
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(ParseError::UnterminatedQuote('\'')),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                            w.push(chars.next().unwrap_or('\\'))
                        }
                        Some(c) => w.push(c),
                        None => return Err(ParseError::UnterminatedQuote('"')),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(ParseError::TrailingBackslash),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    flush(&mut word, &mut tokens);
    Ok(tokens)
}

fn flush(word: &mut Option<String>, tokens: &mut Vec<Token>) {
    if let Some(w) = word.take() {
        tokens.push(Token::Word(w));
    }
}

/// Where a command's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub path: String,
    /// `>>`: append rather than truncate.
    pub append: bool,
}

/// One program to run, with its redirections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// The program and its arguments; never empty.
    pub argv: Vec<String>,
    /// `< path` (the last one given wins).
    pub input: Option<String>,
    /// `> path` or `>> path` (the last one given wins).
    pub output: Option<Output>,
}

/// Commands joined by pipes, run in the foreground or (`&`) in the background.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pipeline {
    pub commands: Vec<Command>,
    pub background: bool,
}

/// Parses a line (or several, separated by newlines) into the pipelines to run in order.
/// A blank line or a comment is an empty list.
pub fn parse(line: &str) -> Result<Vec<Pipeline>, ParseError> {
    let tokens = tokenize(line)?;
    let mut list = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    loop {
        // Empty statements (`;;`, blank lines) are skipped.
        match iter.peek() {
            None => break,
            Some(Token::Semi | Token::Newline) => {
                iter.next();
                continue;
            }
            _ => {}
        }
        let mut pipeline = Pipeline::default();
        loop {
            pipeline.commands.push(parse_command(&mut iter)?);
            if iter.peek() == Some(&Token::Pipe) {
                iter.next();
                continue;
            }
            break;
        }
        match iter.next() {
            None | Some(Token::Semi | Token::Newline) => {}
            Some(Token::Amp) => pipeline.background = true,
            Some(t) => return Err(ParseError::Unexpected(t.text().into())),
        }
        list.push(pipeline);
    }
    Ok(list)
}

fn parse_command(
    iter: &mut core::iter::Peekable<alloc::vec::IntoIter<Token>>,
) -> Result<Command, ParseError> {
    let mut cmd = Command::default();
    while let Some(tok) = iter.peek() {
        match tok {
            Token::Word(_) => {
                if let Some(Token::Word(w)) = iter.next() {
                    cmd.argv.push(w);
                }
            }
            Token::Less | Token::Great | Token::DoubleGreat => {
                let op = iter.next().unwrap_or(Token::Less);
                let path = match iter.next() {
                    Some(Token::Word(w)) => w,
                    _ => return Err(ParseError::MissingFile(op.text().into())),
                };
                match op {
                    Token::Less => cmd.input = Some(path),
                    _ => cmd.output = Some(Output { path, append: op == Token::DoubleGreat }),
                }
            }
            _ => break,
        }
    }
    if cmd.argv.is_empty() {
        let near = iter.peek().map_or("newline", Token::text);
        return Err(ParseError::Unexpected(near.into()));
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|w| w.to_string()).collect()
    }

    fn cmd(ws: &[&str]) -> Command {
        Command { argv: words(ws), ..Command::default() }
    }

    fn fg(cmds: Vec<Command>) -> Pipeline {
        Pipeline { commands: cmds, background: false }
    }

    #[test]
    fn tokens() {
        assert_eq!(
            tokenize("ls -l|wc>>out <in&;").unwrap(),
            vec![
                Token::Word("ls".into()),
                Token::Word("-l".into()),
                Token::Pipe,
                Token::Word("wc".into()),
                Token::DoubleGreat,
                Token::Word("out".into()),
                Token::Less,
                Token::Word("in".into()),
                Token::Amp,
                Token::Semi,
            ]
        );
        assert_eq!(tokenize("  \t ").unwrap(), vec![]);
        assert_eq!(tokenize("a\nb").unwrap()[1], Token::Newline);
    }

    #[test]
    fn quotes_and_escapes() {
        let t = tokenize(r#"echo 'a | b' "c \"d\" \\ e" f\ g '' x""y"#).unwrap();
        assert_eq!(
            t,
            vec![
                Token::Word("echo".into()),
                Token::Word("a | b".into()),
                Token::Word(r#"c "d" \ e"#.into()),
                Token::Word("f g".into()),
                Token::Word("".into()),
                Token::Word("xy".into()),
            ]
        );
        assert_eq!(tokenize(r#""\n""#).unwrap(), vec![Token::Word(r"\n".into())]);
        assert_eq!(tokenize("echo 'abc").unwrap_err(), ParseError::UnterminatedQuote('\''));
        assert_eq!(tokenize("echo \"abc").unwrap_err(), ParseError::UnterminatedQuote('"'));
        assert_eq!(tokenize("echo \\").unwrap_err(), ParseError::TrailingBackslash);
    }

    #[test]
    fn comments() {
        assert_eq!(parse("# nothing").unwrap(), vec![]);
        assert_eq!(parse("echo a#b # c").unwrap(), vec![fg(vec![cmd(&["echo", "a#b"])])]);
        assert_eq!(
            parse("echo 1 # one\necho 2").unwrap(),
            vec![fg(vec![cmd(&["echo", "1"])]), fg(vec![cmd(&["echo", "2"])])]
        );
    }

    #[test]
    fn simple_and_lists() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("ls").unwrap(), vec![fg(vec![cmd(&["ls"])])]);
        assert_eq!(
            parse("echo a; echo b ;").unwrap(),
            vec![fg(vec![cmd(&["echo", "a"])]), fg(vec![cmd(&["echo", "b"])])]
        );
        assert_eq!(
            parse("sleep 1 & echo x").unwrap(),
            vec![
                Pipeline { commands: vec![cmd(&["sleep", "1"])], background: true },
                fg(vec![cmd(&["echo", "x"])]),
            ]
        );
        assert_eq!(
            parse("a&b&").unwrap(),
            vec![
                Pipeline { commands: vec![cmd(&["a"])], background: true },
                Pipeline { commands: vec![cmd(&["b"])], background: true },
            ]
        );
        assert_eq!(parse("; ls").unwrap(), vec![fg(vec![cmd(&["ls"])])]);
    }

    #[test]
    fn pipelines() {
        let p = parse("cat README | grep rust | wc").unwrap();
        assert_eq!(
            p,
            vec![fg(vec![cmd(&["cat", "README"]), cmd(&["grep", "rust"]), cmd(&["wc"])])]
        );
        let p = parse("a|b|c|d|e|f").unwrap();
        assert_eq!(p[0].commands.len(), 6);
        assert!(!p[0].background);
        let p = parse("a | b &").unwrap();
        assert!(p[0].background);
        assert_eq!(p[0].commands.len(), 2);
    }

    #[test]
    fn redirections() {
        let p = parse("sort < in > out").unwrap();
        assert_eq!(
            p[0].commands[0],
            Command {
                argv: words(&["sort"]),
                input: Some("in".into()),
                output: Some(Output { path: "out".into(), append: false }),
            }
        );
        // Redirections may come anywhere among the words; the last one wins.
        let p = parse(">a echo >>b hi").unwrap();
        assert_eq!(
            p[0].commands[0],
            Command {
                argv: words(&["echo", "hi"]),
                input: None,
                output: Some(Output { path: "b".into(), append: true }),
            }
        );
        let p = parse("cat<x|wc>y").unwrap();
        assert_eq!(p[0].commands[0].input.as_deref(), Some("x"));
        assert_eq!(p[0].commands[1].output.as_ref().map(|o| o.path.as_str()), Some("y"));
        assert_eq!(
            parse("echo 'a b' > 'my file'").unwrap()[0].commands[0].output.as_ref().unwrap().path,
            "my file"
        );
    }

    #[test]
    fn errors() {
        let e = |s: &str| parse(s).unwrap_err();
        assert_eq!(e("| ls"), ParseError::Unexpected("|".into()));
        assert_eq!(e("ls |"), ParseError::Unexpected("newline".into()));
        assert_eq!(e("ls |\n"), ParseError::Unexpected("newline".into()));
        assert_eq!(e("ls | ;"), ParseError::Unexpected(";".into()));
        assert_eq!(e("ls | | wc"), ParseError::Unexpected("|".into()));
        assert_eq!(e("ls >"), ParseError::MissingFile(">".into()));
        assert_eq!(e("ls > | wc"), ParseError::MissingFile(">".into()));
        assert_eq!(e("cat <"), ParseError::MissingFile("<".into()));
        assert_eq!(e("> out"), ParseError::Unexpected("newline".into()));
        assert_eq!(e("&"), ParseError::Unexpected("&".into()));
        assert_eq!(e("ls & &"), ParseError::Unexpected("&".into()));
        assert_eq!(e("echo 'x"), ParseError::UnterminatedQuote('\''));
        assert_eq!(e("ls |").to_string(), "syntax error near newline");
        assert_eq!(e("ls >").to_string(), "> needs a file name");
    }
}
