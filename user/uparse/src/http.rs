//! HTTP/1.x as text, for `curl` and `httpd`: URLs, request and status lines, header blocks,
//! request paths (percent-decoding, `.`/`..` without escaping the root), MIME types, response
//! heads, error pages and directory listings.
//!
//! A *head* is the start line and the headers up to the empty line. Lines end with CRLF; a bare
//! LF is accepted too (as RFC 9112 allows), a CR anywhere else is not. Empty lines before the
//! start line are skipped. Only IPv4 dotted quads name hosts (there is no DNS).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::inet::{parse_ipv4, parse_port, Endpoint};

/// The largest request head `httpd` reads (bytes, with the empty line).
pub const MAX_REQUEST_HEAD: usize = 8192;
/// The largest response head `curl` reads.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The most header lines in a head.
pub const MAX_HEADERS: usize = 100;
/// The longest path `curl` sends (after percent-encoding).
pub const MAX_URL_PATH: usize = 4096;
/// The longest method name.
const MAX_METHOD: usize = 32;

// ---------------------------------------------------------------------------------------------
// URLs (curl)

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub server: Endpoint,
    /// The request target: starts with `/`, percent-encoded, may hold a `?query`.
    pub path: String,
}

impl Target {
    /// The `Host:` header's value: the address, and the port unless it is 80.
    pub fn host_header(&self) -> String {
        let mut s = String::new();
        let [a, b, c, d] = self.server.addr;
        let _ = write!(s, "{a}.{b}.{c}.{d}");
        if self.server.port != 80 {
            let _ = write!(s, ":{}", self.server.port);
        }
        s
    }
}

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    Empty,
    /// A scheme other than `http` (the name, lower-cased).
    Scheme(String),
    /// The host is not a dotted quad (names need DNS, which there is none of).
    Host,
    /// The port is not a number in 1..=65535.
    Port,
    /// A path in the URL and another as an argument.
    TwoPaths,
    /// The path is longer than [`MAX_URL_PATH`].
    PathTooLong,
}

impl UrlError {
    pub fn message(&self) -> String {
        match self {
            UrlError::Empty => "empty URL".into(),
            UrlError::Scheme(s) => alloc::format!("protocol \"{s}\" not supported (only http)"),
            UrlError::Host => "the host must be an IPv4 address a.b.c.d (there is no DNS)".into(),
            UrlError::Port => "bad port number (1-65535)".into(),
            UrlError::TwoPaths => "a path in the URL and another as an argument".into(),
            UrlError::PathTooLong => "path too long".into(),
        }
    }
}

/// `http://a.b.c.d[:port][/path]` or `a.b.c.d[:port][/path]`, with `path_arg` as the path when
/// given (it may lack its leading `/`). The port defaults to 80, the path to `/`. A fragment
/// (`#...`) is dropped; bytes that may not appear in a request line (spaces, controls,
/// non-ASCII) are percent-encoded. Dot segments are sent as they are (like `curl
/// --path-as-is`).
pub fn parse_url(url: &str, path_arg: Option<&str>) -> Result<Target, UrlError> {
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    let rest = match url.find("://") {
        Some(i) => {
            let scheme = url[..i].to_ascii_lowercase();
            if scheme != "http" {
                return Err(UrlError::Scheme(scheme));
            }
            &url[i + 3..]
        }
        None => url,
    };
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, url_path) = rest.split_at(auth_end);
    if authority.is_empty() || authority.contains('@') {
        return Err(UrlError::Host);
    }
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, parse_port(p).filter(|&p| p != 0).ok_or(UrlError::Port)?),
        None => (authority, 80),
    };
    let addr = parse_ipv4(host).ok_or(UrlError::Host)?;
    let url_path = url_path.split('#').next().unwrap_or("");
    let raw = match (url_path.is_empty(), path_arg) {
        (false, Some(_)) => return Err(UrlError::TwoPaths),
        (false, None) => url_path,
        (true, Some(p)) => p.split('#').next().unwrap_or(""),
        (true, None) => "/",
    };
    let mut path = String::with_capacity(raw.len() + 1);
    if !raw.starts_with('/') {
        path.push('/');
    }
    for b in raw.bytes() {
        if (0x21..0x7f).contains(&b) {
            path.push(b as char);
        } else {
            push_pct(&mut path, b);
        }
        if path.len() > MAX_URL_PATH {
            return Err(UrlError::PathTooLong);
        }
    }
    Ok(Target { server: Endpoint::new(addr, port), path })
}

/// The request `curl` sends: HTTP/1.0, `Host:`, and `Connection: close`.
pub fn request(method: &str, target: &Target, user_agent: &str) -> String {
    alloc::format!(
        "{method} {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header()
    )
}

// ---------------------------------------------------------------------------------------------
// Heads

/// How far a buffer holds a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// The head is the first `n` bytes (the empty line included).
    Complete(usize),
    /// Not yet; read more.
    Incomplete,
    /// Longer than the limit without its end: give up.
    TooLarge,
}

/// Looks for the end of a head (an empty line) in the first `max` bytes of `buf`.
pub fn scan_head(buf: &[u8], max: usize) -> Scan {
    let limit = buf.len().min(max);
    // Empty lines before the start line do not end anything.
    let start = buf[..limit].iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(limit);
    let mut i = start;
    while i < limit {
        if buf[i] == b'\n' {
            if i + 1 < limit && buf[i + 1] == b'\n' {
                return Scan::Complete(i + 2);
            }
            if i + 2 < limit && buf[i + 1] == b'\r' && buf[i + 2] == b'\n' {
                return Scan::Complete(i + 3);
            }
        }
        i += 1;
    }
    if buf.len() >= max {
        Scan::TooLarge
    } else {
        Scan::Incomplete
    }
}

/// What is wrong with a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Not UTF-8 text, or a control character (a bare CR, a NUL) in it.
    NotText,
    /// The request or status line is not `METHOD TARGET HTTP/x.y` / `HTTP/x.y CODE REASON`.
    BadStartLine,
    /// `HTTP/x.y` with a major version other than 1.
    UnsupportedVersion,
    /// A header line is not `name: value` (or continues the previous one: obsolete folding).
    BadHeader,
    TooManyHeaders,
    /// No empty line within the limit.
    TooLarge,
    /// A `Content-Length` that is not one decimal number.
    BadContentLength,
}

impl HeadError {
    /// The status a server answers with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::UnsupportedVersion => 505,
            _ => 400,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            HeadError::NotText => "the head is not text",
            HeadError::BadStartLine => "malformed start line",
            HeadError::UnsupportedVersion => "HTTP version not supported",
            HeadError::BadHeader => "malformed header line",
            HeadError::TooManyHeaders => "too many header lines",
            HeadError::TooLarge => "head too large",
            HeadError::BadContentLength => "bad Content-Length",
        }
    }
}

/// A header block: `(name, value)` pairs in order, values without surrounding blanks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers<'a>(pub Vec<(&'a str, &'a str)>);

impl<'a> Headers<'a> {
    /// The first value of the header `name` (any case).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| v)
    }

    /// `Content-Length` when present; an error when it is not a number or when two disagree.
    pub fn content_length(&self) -> Result<Option<u64>, HeadError> {
        let mut found = None;
        for (_, v) in self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case("content-length")) {
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|c| c.is_ascii_digit()) {
                return Err(HeadError::BadContentLength);
            }
            let n: u64 = v.parse().map_err(|_| HeadError::BadContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(HeadError::BadContentLength);
            }
            found = Some(n);
        }
        Ok(found)
    }
}

/// `tchar` of RFC 9110: what method and header names are made of.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// `HTTP/x.y` as `(x, y)`.
fn parse_version(s: &str) -> Option<(u8, u8)> {
    let v = s.strip_prefix("HTTP/")?.as_bytes();
    match v {
        [maj, b'.', min] if maj.is_ascii_digit() && min.is_ascii_digit() => {
            Some((maj - b'0', min - b'0'))
        }
        _ => None,
    }
}

/// The lines of a head (found by [`scan_head`]): text, split at LF with the CR before it
/// removed, leading and trailing empty lines dropped.
fn head_lines(head: &[u8]) -> Result<Vec<&str>, HeadError> {
    let text = core::str::from_utf8(head).map_err(|_| HeadError::NotText)?;
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            return Err(HeadError::NotText);
        }
        lines.push(line);
    }
    let first = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.is_empty()).map_or(first, |i| i + 1);
    // An empty line inside what is left (lines after the head's end) is a bad header line.
    Ok(lines[first..last].to_vec())
}

fn parse_header_lines<'a>(lines: &[&'a str]) -> Result<Headers<'a>, HeadError> {
    if lines.len() > MAX_HEADERS {
        return Err(HeadError::TooManyHeaders);
    }
    let mut headers = Vec::with_capacity(lines.len());
    for line in lines {
        if line.is_empty() {
            return Err(HeadError::BadHeader);
        }
        let (name, value) = line.split_once(':').ok_or(HeadError::BadHeader)?;
        // No blank before the colon, and no folded continuation lines (both RFC 9112 400s).
        if !is_token(name) {
            return Err(HeadError::BadHeader);
        }
        headers.push((name, value.trim_matches([' ', '\t'])));
    }
    Ok(Headers(headers))
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target as sent (see [`request_path`]).
    pub target: &'a str,
    pub version: (u8, u8),
    pub headers: Headers<'a>,
}

/// Parses a request head (the bytes [`scan_head`] found).
pub fn parse_request(head: &[u8]) -> Result<Request<'_>, HeadError> {
    let lines = head_lines(head)?;
    let (first, rest) = lines.split_first().ok_or(HeadError::BadStartLine)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::BadStartLine);
    };
    if !is_token(method) || method.len() > MAX_METHOD {
        return Err(HeadError::BadStartLine);
    }
    if target.is_empty() || !target.bytes().all(|c| (0x21..0x7f).contains(&c)) {
        return Err(HeadError::BadStartLine);
    }
    let version = parse_version(version).ok_or(HeadError::BadStartLine)?;
    if version.0 != 1 {
        return Err(HeadError::UnsupportedVersion);
    }
    Ok(Request { method, target, version, headers: parse_header_lines(rest)? })
}

impl Request<'_> {
    /// Whether the client asks for the connection to stay open after the response (RFC 9112
    /// 9.3): HTTP/1.1 unless a `Connection` header lists `close`; HTTP/1.0 only when one lists
    /// `keep-alive`. Tokens count in any case, from every `Connection` header.
    pub fn keep_alive(&self) -> bool {
        let listed = |token: &str| {
            self.headers
                .0
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
        };
        if listed("close") {
            return false;
        }
        self.version >= (1, 1) || listed("keep-alive")
    }

    /// Whether a body follows the head: a `Content-Length` above 0, or any
    /// `Transfer-Encoding`. A server that reads no bodies cannot tell where the next request
    /// on the connection starts after one, so it answers and closes.
    pub fn has_body(&self) -> Result<bool, HeadError> {
        if self.headers.get("transfer-encoding").is_some() {
            return Ok(true);
        }
        Ok(self.headers.content_length()?.is_some_and(|n| n > 0))
    }
}

/// The methods `httpd` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

impl Method {
    /// `GET` or `HEAD` (methods are case-sensitive); `None` for others (405).
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            _ => None,
        }
    }
}

/// A status line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status<'a> {
    pub version: (u8, u8),
    pub code: u16,
    pub reason: &'a str,
}

impl Status<'_> {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// `HTTP/x.y CODE [REASON]`.
pub fn parse_status_line(line: &str) -> Result<Status<'_>, HeadError> {
    let (version, rest) = line.split_once(' ').ok_or(HeadError::BadStartLine)?;
    let version = parse_version(version).ok_or(HeadError::BadStartLine)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) || code.starts_with('0') {
        return Err(HeadError::BadStartLine);
    }
    if version.0 != 1 {
        return Err(HeadError::UnsupportedVersion);
    }
    Ok(Status { version, code: code.parse().map_err(|_| HeadError::BadStartLine)?, reason })
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: Status<'a>,
    pub headers: Headers<'a>,
}

/// Parses a response head (the bytes [`scan_head`] found).
pub fn parse_response(head: &[u8]) -> Result<Response<'_>, HeadError> {
    let lines = head_lines(head)?;
    let (first, rest) = lines.split_first().ok_or(HeadError::BadStartLine)?;
    let status = parse_status_line(first)?;
    let headers = parse_header_lines(rest)?;
    headers.content_length()?;
    Ok(Response { status, headers })
}

// ---------------------------------------------------------------------------------------------
// Request paths (httpd)

/// Why a request target names no file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not `/...` nor `http://host/...`.
    NotAPath,
    /// A `%` not followed by two hex digits, an encoded NUL, or bytes that are not UTF-8.
    BadEncoding,
    /// `..` above the root.
    Escapes,
}

/// The file path a request target names, relative to the served root: percent-decoded, the
/// query dropped, empty and `.` segments removed, `..` applied; `/` first, and `/` last when
/// the target ended with one (or named the root). A `..` above the root is an error, not
/// clamped.
pub fn request_path(target: &str) -> Result<String, PathError> {
    let path = if let Some(rest) = target.strip_prefix("http://") {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else {
        target
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAPath);
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path).ok_or(PathError::BadEncoding)?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::BadEncoding)?;
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(PathError::Escapes)?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let dir = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    if segments.is_empty() || dir {
        out.push('/');
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `%XX` decoded; `None` on a bad escape or an encoded NUL.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            let v = hi << 4 | lo;
            if v == 0 {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

/// A path with everything but unreserved characters, `/` and a few safe sub-delimiters
/// percent-encoded (for `href`s).
pub fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

/// `&`, `<`, `>`, `"` and `'` as character references.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Responses (httpd)

/// The `Content-Type` for a file name, by its extension (any case).
pub fn mime_type(name: &str) -> &'static str {
    let base = name.rsplit('/').next().unwrap_or(name);
    let Some((stem, ext)) = base.rsplit_once('.') else { return "application/octet-stream" };
    if stem.is_empty() {
        return "application/octet-stream"; // `.profile` has no extension
    }
    let mut lower = [0u8; 8];
    if ext.len() > lower.len() {
        return "application/octet-stream";
    }
    for (l, c) in lower.iter_mut().zip(ext.bytes()) {
        *l = c.to_ascii_lowercase();
    }
    match &lower[..ext.len()] {
        b"html" | b"htm" => "text/html",
        b"css" => "text/css",
        b"js" | b"mjs" => "text/javascript",
        b"txt" | b"md" => "text/plain",
        b"png" => "image/png",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"gif" => "image/gif",
        b"svg" => "image/svg+xml",
        b"json" => "application/json",
        b"ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The reason phrase of a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The server's name in `Server:`.
pub const SERVER: &str = "rustix-httpd";

/// How a response goes on its connection: the version of its status line and whether the
/// connection stays open after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// `HTTP/1.minor`: the request's own (0 or 1), so that an HTTP/1.0 client reads an
    /// HTTP/1.0 answer.
    pub minor: u8,
    /// `Connection: keep-alive` (more requests may follow) or `Connection: close`.
    pub keep_alive: bool,
}

/// A response head: the status line, `Server`, `Content-Type`, `Content-Length`,
/// `Connection`, then `extra` headers.
pub fn response_head(
    code: u16,
    content_type: &str,
    length: u64,
    framing: Framing,
    extra: &[(&str, &str)],
) -> String {
    let mut s = String::with_capacity(160);
    let connection = if framing.keep_alive { "keep-alive" } else { "close" };
    let _ = write!(
        s,
        "HTTP/1.{} {code} {}\r\nServer: {SERVER}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: {connection}\r\n",
        framing.minor.min(1),
        reason(code)
    );
    for (name, value) in extra {
        let _ = write!(s, "{name}: {value}\r\n");
    }
    s.push_str("\r\n");
    s
}

/// A small HTML page for an error status, with an optional detail line.
pub fn error_page(code: u16, detail: &str) -> String {
    let title = alloc::format!("{code} {}", reason(code));
    let mut s = alloc::format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><h1>{title}</h1>\n"
    );
    if !detail.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", html_escape(detail));
    }
    let _ = writeln!(s, "<hr><address>{SERVER}</address></body></html>");
    s
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListEntry {
    pub name: String,
    pub is_dir: bool,
}

/// The HTML listing of the directory at `url_path` (a decoded path, as from [`request_path`]):
/// title `Index of <path>`, then one link per entry, sorted by name, directories with a
/// trailing `/`. Links are absolute paths (percent-encoded), names HTML-escaped; `.` and `..`
/// are left out.
pub fn listing_html(url_path: &str, entries: &[ListEntry]) -> String {
    let mut sorted: Vec<&ListEntry> =
        entries.iter().filter(|e| e.name != "." && e.name != "..").collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let base = if url_path.ends_with('/') {
        String::from(url_path)
    } else {
        alloc::format!("{url_path}/")
    };
    let title = html_escape(&alloc::format!("Index of {url_path}"));
    let mut s = alloc::format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><h1>{title}</h1>\n<ul>\n"
    );
    for e in sorted {
        let slash = if e.is_dir { "/" } else { "" };
        let href = percent_encode_path(&alloc::format!("{base}{}{slash}", e.name));
        let _ = writeln!(s, "<li><a href=\"{href}\">{}{slash}</a></li>", html_escape(&e.name));
    }
    let _ = writeln!(s, "</ul>\n<hr><address>{SERVER}</address></body></html>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    fn target(addr: [u8; 4], port: u16, path: &str) -> Target {
        Target { server: Endpoint::new(addr, port), path: path.to_string() }
    }

    #[test]
    fn urls() {
        let gw = [10, 0, 2, 2];
        assert_eq!(parse_url("http://10.0.2.2/", None), Ok(target(gw, 80, "/")));
        assert_eq!(parse_url("http://10.0.2.2", None), Ok(target(gw, 80, "/")));
        assert_eq!(
            parse_url("HTTP://10.0.2.2:8080/a/b.html", None),
            Ok(target(gw, 8080, "/a/b.html"))
        );
        assert_eq!(parse_url("10.0.2.2", None), Ok(target(gw, 80, "/")));
        assert_eq!(parse_url("10.0.2.2:81", Some("/x")), Ok(target(gw, 81, "/x")));
        assert_eq!(parse_url("10.0.2.2", Some("x y")), Ok(target(gw, 80, "/x%20y")));
        assert_eq!(parse_url("10.0.2.2/p?q=1#frag", None), Ok(target(gw, 80, "/p?q=1")));
        assert_eq!(parse_url("http://10.0.2.2?q", None), Ok(target(gw, 80, "/?q")));
        assert_eq!(parse_url("10.0.2.2", Some("/é")), Ok(target(gw, 80, "/%C3%A9")));
        assert_eq!(parse_url("10.0.2.2/../x", None), Ok(target(gw, 80, "/../x")));
    }

    #[test]
    fn bad_urls() {
        assert_eq!(parse_url("", None), Err(UrlError::Empty));
        assert_eq!(parse_url("https://1.2.3.4/", None), Err(UrlError::Scheme("https".into())));
        assert_eq!(parse_url("ftp://1.2.3.4/", None), Err(UrlError::Scheme("ftp".into())));
        for bad in [
            "http://",
            "http:///x",
            "example.com",
            "http://host:80/",
            "1.2.3.4.5",
            "u@1.2.3.4",
            "256.1.1.1",
        ] {
            assert_eq!(parse_url(bad, None), Err(UrlError::Host), "{bad:?}");
        }
        for bad in ["1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x", "1.2.3.4:-1"] {
            assert_eq!(parse_url(bad, None), Err(UrlError::Port), "{bad:?}");
        }
        assert_eq!(parse_url("1.2.3.4/a", Some("/b")), Err(UrlError::TwoPaths));
        let long = "a".repeat(MAX_URL_PATH + 1);
        assert_eq!(parse_url("1.2.3.4", Some(&long)), Err(UrlError::PathTooLong));
        let spaces = " ".repeat(MAX_URL_PATH / 2);
        assert_eq!(parse_url("1.2.3.4", Some(&spaces)), Err(UrlError::PathTooLong));
        assert!(!UrlError::Host.message().is_empty());
    }

    #[test]
    fn the_request_curl_sends() {
        let r = request("GET", &target([10, 0, 2, 2], 8080, "/a"), "curl-test");
        assert_eq!(
            r,
            "GET /a HTTP/1.0\r\nHost: 10.0.2.2:8080\r\nUser-Agent: curl-test\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(target([1, 2, 3, 4], 80, "/").host_header(), "1.2.3.4");
        // What curl sends, httpd reads.
        let Scan::Complete(n) = scan_head(r.as_bytes(), MAX_REQUEST_HEAD) else { panic!() };
        assert_eq!(n, r.len());
        let req = parse_request(r.as_bytes()).unwrap();
        assert_eq!((req.method, req.target, req.version), ("GET", "/a", (1, 0)));
        assert_eq!(req.headers.get("host"), Some("10.0.2.2:8080"));
    }

    #[test]
    fn scanning_heads() {
        assert_eq!(scan_head(b"", 100), Scan::Incomplete);
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\n", 100), Scan::Incomplete);
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\nHost: x\r\n\r", 100), Scan::Incomplete);
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\n\r\nbody", 100), Scan::Complete(18));
        assert_eq!(scan_head(b"GET / HTTP/1.0\n\nbody", 100), Scan::Complete(16));
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\nA: b\n\r\n", 100), Scan::Complete(23));
        // Leading empty lines do not end the head.
        assert_eq!(scan_head(b"\r\n\r\n\n", 100), Scan::Incomplete);
        assert_eq!(scan_head(b"\r\nGET / HTTP/1.0\r\n\r\n", 100), Scan::Complete(20));
        // A head without its empty line: incomplete below the limit, too large at it.
        let long = vec![b'a'; 100];
        assert_eq!(scan_head(&long, 101), Scan::Incomplete);
        assert_eq!(scan_head(&long, 100), Scan::TooLarge);
        assert_eq!(scan_head(&long, 50), Scan::TooLarge);
        // The end must lie within the limit.
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\n\r\n", 17), Scan::TooLarge);
        assert_eq!(scan_head(b"GET / HTTP/1.0\r\n\r\n", 18), Scan::Complete(18));
    }

    #[test]
    fn requests() {
        let r = parse_request(
            b"GET /index.html HTTP/1.1\r\nHost: 10.0.2.15\r\nUser-Agent:x\r\nX-Empty:\r\nAccept:  text/html \t\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/index.html");
        assert_eq!(r.version, (1, 1));
        assert_eq!(
            r.headers.0,
            [("Host", "10.0.2.15"), ("User-Agent", "x"), ("X-Empty", ""), ("Accept", "text/html")]
        );
        assert_eq!(r.headers.get("ACCEPT"), Some("text/html"));
        assert_eq!(r.headers.get("cookie"), None);
        let r = parse_request(b"\r\nHEAD / HTTP/1.0\n\n").unwrap();
        assert_eq!((r.method, r.target, r.version), ("HEAD", "/", (1, 0)));
        assert!(r.headers.0.is_empty());
        assert_eq!(parse_request(b"POST /x HTTP/1.0\r\n\r\n").unwrap().method, "POST");
        assert_eq!(Method::parse("GET"), Some(Method::Get));
        assert_eq!(Method::parse("HEAD"), Some(Method::Head));
        assert_eq!(Method::parse("get"), None);
        assert_eq!(Method::parse("DELETE"), None);
    }

    #[test]
    fn bad_requests() {
        use HeadError::*;
        let long_method = "A".repeat(MAX_METHOD + 1) + " / HTTP/1.0\r\n\r\n";
        let many = "GET / HTTP/1.0\r\n".to_string() + &"A: b\r\n".repeat(MAX_HEADERS + 1) + "\r\n";
        let cases: &[(&[u8], HeadError)] = &[
            (b"", BadStartLine),
            (b"\r\n\r\n", BadStartLine),
            (b"GET\r\n\r\n", BadStartLine),
            (b"GET /\r\n\r\n", BadStartLine),
            (b"GET / HTTP/1.0 extra\r\n\r\n", BadStartLine),
            (b"GET  / HTTP/1.0\r\n\r\n", BadStartLine),
            (b"GET / HTTP/1.0 \r\n\r\n", BadStartLine),
            (b"G(T / HTTP/1.0\r\n\r\n", BadStartLine),
            (b"GET / HTTP/1\r\n\r\n", BadStartLine),
            (b"GET / HTTP/1.10\r\n\r\n", BadStartLine),
            (b"GET / http/1.0\r\n\r\n", BadStartLine),
            (b"GET / FTP/1.0\r\n\r\n", BadStartLine),
            (b"GET /\xc3\xa9 HTTP/1.0\r\n\r\n", BadStartLine),
            (long_method.as_bytes(), BadStartLine),
            (b"GET / HTTP/2.0\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/0.9\r\n\r\n", UnsupportedVersion),
            (b"GET / HTTP/1.0\r\nNoColon\r\n\r\n", BadHeader),
            (b"GET / HTTP/1.0\r\nBad Name: x\r\n\r\n", BadHeader),
            (b"GET / HTTP/1.0\r\nName : x\r\n\r\n", BadHeader),
            (b"GET / HTTP/1.0\r\n: x\r\n\r\n", BadHeader),
            (b"GET / HTTP/1.0\r\nA: b\r\n folded\r\n\r\n", BadHeader),
            (b"GET / HTTP/1.0\r\nA: b\r\n\r\nB: c\r\n\r\n", BadHeader),
            (many.as_bytes(), TooManyHeaders),
            (b"GET / HTTP/1.0\rX: y\r\n\r\n", NotText),
            (b"GET / HTTP/1.0\r\nA: b\x00c\r\n\r\n", NotText),
            (b"GET / HTTP/1.0\r\nA: \xff\r\n\r\n", NotText),
        ];
        for (head, want) in cases {
            assert_eq!(
                parse_request(head),
                Err(*want),
                "{:?}",
                std::string::String::from_utf8_lossy(head)
            );
        }
        assert_eq!(BadHeader.status(), 400);
        assert_eq!(UnsupportedVersion.status(), 505);
        assert_eq!(TooLarge.status(), 400);
    }

    #[test]
    fn keep_alive_and_bodies() {
        let keeps = |head: &str| parse_request(head.as_bytes()).unwrap().keep_alive();
        assert!(keeps("GET / HTTP/1.1\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.1\r\nConnection: x\r\nConnection: close\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.1\r\nConnection: closed, x-close\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.0\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(keeps("GET / HTTP/1.0\r\nConnection: te,\tkeep-alive \r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
        assert!(!keeps("GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n"));
        // HTTP/1.9 is a later HTTP/1.x: persistent by default too.
        assert!(keeps("GET / HTTP/1.9\r\n\r\n"));

        let body = |head: &str| parse_request(head.as_bytes()).unwrap().has_body();
        assert_eq!(body("GET / HTTP/1.1\r\n\r\n"), Ok(false));
        assert_eq!(body("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), Ok(false));
        assert_eq!(body("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n"), Ok(true));
        assert_eq!(body("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Ok(true));
        assert_eq!(
            body("GET / HTTP/1.1\r\nTransfer-Encoding: x\r\nContent-Length: 0\r\n\r\n"),
            Ok(true)
        );
        assert_eq!(
            body("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HeadError::BadContentLength)
        );
        assert_eq!(
            body("GET / HTTP/1.1\r\nContent-Length: -0\r\n\r\n"),
            Err(HeadError::BadContentLength)
        );
    }

    /// Pipelined requests: each head is found in turn at the front of what is left.
    #[test]
    fn pipelined_heads() {
        let mut buf: &[u8] =
            b"GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\nHost: x\n\nGET /c HTTP/1.1\r\n";
        let mut targets = Vec::new();
        while let Scan::Complete(n) = scan_head(buf, MAX_REQUEST_HEAD) {
            let r = parse_request(&buf[..n]).unwrap();
            targets.push((r.method, r.target));
            buf = &buf[n..];
        }
        assert_eq!(targets, [("GET", "/a"), ("HEAD", "/b")]);
        assert_eq!(buf, b"GET /c HTTP/1.1\r\n");
    }

    #[test]
    fn status_lines_and_responses() {
        let s = parse_status_line("HTTP/1.1 404 Not Found").unwrap();
        assert_eq!((s.version, s.code, s.reason), ((1, 1), 404, "Not Found"));
        assert!(!s.is_success());
        let s = parse_status_line("HTTP/1.0 200").unwrap();
        assert_eq!((s.code, s.reason, s.is_success()), (200, "", true));
        assert_eq!(parse_status_line("HTTP/1.0 204 ").unwrap().reason, "");
        for bad in [
            "",
            "HTTP/1.0",
            "HTTP/1.0 20",
            "HTTP/1.0 2000 x",
            "HTTP/1.0 abc x",
            "HTTP/1.0 099 x",
            "ICY 200 OK",
            "HTTP/1.0  200 OK",
        ] {
            assert_eq!(parse_status_line(bad), Err(HeadError::BadStartLine), "{bad:?}");
        }
        assert_eq!(parse_status_line("HTTP/2.0 200 OK"), Err(HeadError::UnsupportedVersion));

        let r = parse_response(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status.code, 200);
        assert_eq!(r.headers.get("content-type"), Some("text/html"));
        assert_eq!(r.headers.content_length(), Ok(Some(12)));
        let r = parse_response(b"HTTP/1.0 200 OK\n\n").unwrap();
        assert_eq!(r.headers.content_length(), Ok(None));
        for bad in [
            &b"HTTP/1.0 200 OK\r\nContent-Length: x\r\n\r\n"[..],
            b"HTTP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: \r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ] {
            assert_eq!(parse_response(bad), Err(HeadError::BadContentLength));
        }
        let same =
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(same.unwrap().headers.content_length(), Ok(Some(5)));
        assert_eq!(parse_response(b"<html>\r\n\r\n"), Err(HeadError::BadStartLine));
    }

    #[test]
    fn request_paths() {
        let ok = |t: &str| request_path(t).unwrap();
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/index.html"), "/index.html");
        assert_eq!(ok("/docs/"), "/docs/");
        assert_eq!(ok("/docs"), "/docs");
        assert_eq!(ok("//docs//a.html"), "/docs/a.html");
        assert_eq!(ok("/./docs/./a.html"), "/docs/a.html");
        assert_eq!(ok("/docs/../index.html"), "/index.html");
        assert_eq!(ok("/docs/.."), "/");
        assert_eq!(ok("/docs/."), "/docs/");
        assert_eq!(ok("/a%20b.html"), "/a b.html");
        assert_eq!(ok("/index.html?x=1&y=/../.."), "/index.html");
        assert_eq!(ok("/%C3%A9"), "/é");
        assert_eq!(ok("http://10.0.2.15/style.css"), "/style.css");
        assert_eq!(ok("http://10.0.2.15"), "/");
        assert_eq!(ok("/a%2fb"), "/a/b");

        assert_eq!(request_path("index.html"), Err(PathError::NotAPath));
        assert_eq!(request_path("*"), Err(PathError::NotAPath));
        assert_eq!(request_path(""), Err(PathError::NotAPath));
        for bad in
            ["/..", "/../etc/motd", "/docs/../../x", "/%2e%2e/x", "/%2E%2E%2Fx", "/a/./../../b"]
        {
            assert_eq!(request_path(bad), Err(PathError::Escapes), "{bad:?}");
        }
        for bad in ["/%", "/%4", "/%zz", "/%00", "/a%2", "/%ff"] {
            assert_eq!(request_path(bad), Err(PathError::BadEncoding), "{bad:?}");
        }
    }

    #[test]
    fn encoding_and_escaping() {
        assert_eq!(percent_decode("a%41%62"), Some(b"aAb".to_vec()));
        assert_eq!(percent_encode_path("/a b/é\"<x>?#%"), "/a%20b/%C3%A9%22%3Cx%3E%3F%23%25");
        assert_eq!(percent_encode_path("/ok-._~/x.html"), "/ok-._~/x.html");
        for s in ["/a b", "/é/ü", "/100%/x"] {
            assert_eq!(percent_decode(&percent_encode_path(s)).unwrap(), s.as_bytes());
        }
        assert_eq!(
            html_escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn mime_types() {
        for (name, want) in [
            ("index.html", "text/html"),
            ("/www/docs/a.HTM", "text/html"),
            ("style.css", "text/css"),
            ("app.js", "text/javascript"),
            ("notes.txt", "text/plain"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.JPEG", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("logo.svg", "image/svg+xml"),
            ("data.json", "application/json"),
            ("favicon.ico", "image/x-icon"),
            ("archive.tar.gz", "application/octet-stream"),
            ("README", "application/octet-stream"),
            (".html", "application/octet-stream"),
            ("dir.html/file", "application/octet-stream"),
            ("x.verylongextension", "application/octet-stream"),
            ("", "application/octet-stream"),
        ] {
            assert_eq!(mime_type(name), want, "{name:?}");
        }
    }

    #[test]
    fn response_heads_and_pages() {
        let close = Framing { minor: 0, keep_alive: false };
        let h = response_head(200, "text/html", 42, close, &[]);
        assert_eq!(
            h,
            "HTTP/1.0 200 OK\r\nServer: rustix-httpd\r\nContent-Type: text/html\r\nContent-Length: 42\r\nConnection: close\r\n\r\n"
        );
        let h = response_head(200, "text/css", 7, Framing { minor: 1, keep_alive: true }, &[]);
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
        assert!(h.contains("\r\nContent-Length: 7\r\nConnection: keep-alive\r\n"), "{h}");
        // A version the server does not speak is answered as HTTP/1.1.
        let h = response_head(200, "text/css", 7, Framing { minor: 9, keep_alive: true }, &[]);
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
        let h = response_head(405, "text/html", 0, close, &[("Allow", "GET, HEAD")]);
        assert!(h.starts_with("HTTP/1.0 405 Method Not Allowed\r\n"));
        assert!(h.ends_with("Allow: GET, HEAD\r\n\r\n"));
        // curl reads what httpd writes.
        let r = parse_response(h.as_bytes()).unwrap();
        assert_eq!((r.status.code, r.status.reason), (405, "Method Not Allowed"));
        assert_eq!(r.headers.content_length(), Ok(Some(0)));

        for code in [400, 404, 405, 505] {
            let page = error_page(code, "");
            assert!(page.contains(&std::format!("<title>{code} {}</title>", reason(code))));
            assert_ne!(reason(code), "Unknown");
        }
        assert!(error_page(404, "<script>").contains("&lt;script&gt;"));
        assert_eq!(reason(299), "Unknown");
    }

    #[test]
    fn listings() {
        let e = |name: &str, is_dir| ListEntry { name: name.to_string(), is_dir };
        let page = listing_html(
            "/docs/",
            &[
                e("z.html", false),
                e("a b.txt", false),
                e(".", true),
                e("..", true),
                e("sub", true),
                e("<x>", false),
            ],
        );
        assert!(page.contains("<title>Index of /docs/</title>"));
        assert_eq!(page.matches("<a href").count(), 4);
        let order: Vec<usize> = ["%3Cx%3E", "a%20b.txt", "sub/", "z.html"]
            .iter()
            .map(|n| {
                page.find(&std::format!("href=\"/docs/{n}\""))
                    .unwrap_or_else(|| panic!("{n}: {page}"))
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{page}");
        assert!(page.contains(">sub/</a>"));
        assert!(page.contains(">&lt;x&gt;</a>"));
        assert!(!page.contains("<x>"));
        let root = listing_html("/", &[e("index.html", false)]);
        assert!(root.contains("<title>Index of /</title>"));
        assert!(root.contains("href=\"/index.html\""));
        assert!(listing_html("/d", &[e("f", false)]).contains("href=\"/d/f\""));
        assert_eq!(listing_html("/", &[]).matches("<a href").count(), 0);
    }
}
