//! Raw arguments (console text with `key:value` tokens, or a chat client's typed options) → typed values.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::core::catalog::{Command, OptionSpec, OptionType, ParamValue};
use crate::core::error::UserError;
use crate::core::report::code;
use crate::core::types::{GroupName, ServiceName, parse_duration};

/// A typed argument value.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    String(String),
    Integer(i64),
    Boolean(bool),
    Duration(Duration),
    Services(Vec<ServiceName>),
    Group(GroupName),
}

impl From<&ParamValue> for ArgValue {
    fn from(p: &ParamValue) -> Self {
        match p {
            ParamValue::Integer(i) => ArgValue::Integer(*i),
            ParamValue::String(s) => ArgValue::String(s.clone()),
            ParamValue::Boolean(b) => ArgValue::Boolean(*b),
            ParamValue::Duration(d) => ArgValue::Duration(*d),
        }
    }
}

/// The arguments of one invocation: options the person gave plus the command's fixed params.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    values: BTreeMap<String, ArgValue>,
}

impl Args {
    /// Every value as text, by name: what an approval is bound to.
    pub fn canonical(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    ArgValue::String(s) => s.clone(),
                    ArgValue::Integer(i) => i.to_string(),
                    ArgValue::Boolean(b) => b.to_string(),
                    ArgValue::Duration(d) => format!("{}ms", d.as_millis()),
                    ArgValue::Services(s) => {
                        s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                    }
                    ArgValue::Group(g) => g.to_string(),
                };
                (k.clone(), text)
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&ArgValue> {
        self.values.get(name)
    }
    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(ArgValue::Integer(i)) => Some(*i),
            _ => None,
        }
    }
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ArgValue::String(s)) => Some(s),
            _ => None,
        }
    }
    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(ArgValue::Boolean(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn duration(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(ArgValue::Duration(d)) => Some(*d),
            _ => None,
        }
    }
    pub fn services(&self, name: &str) -> Option<&[ServiceName]> {
        match self.values.get(name) {
            Some(ArgValue::Services(s)) => Some(s),
            _ => None,
        }
    }
    pub fn group(&self, name: &str) -> Option<&GroupName> {
        match self.values.get(name) {
            Some(ArgValue::Group(g)) => Some(g),
            _ => None,
        }
    }
}

/// Arguments as the person gave them: a console line's text, or a chat client's options,
/// which arrive typed and are never turned into text to be split again.
#[derive(Debug, Clone, PartialEq)]
pub enum RawArgs {
    Text(String),
    Options(Vec<(String, OptionValue)>),
}

/// A value a chat client typed for an option.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

impl From<&str> for RawArgs {
    fn from(s: &str) -> Self {
        RawArgs::Text(s.to_owned())
    }
}

impl From<String> for RawArgs {
    fn from(s: String) -> Self {
        RawArgs::Text(s)
    }
}

impl RawArgs {
    /// As they would be typed on the console (`name:value`, quoted where needed): what the
    /// audit shows and an approval request keeps, and what parses back to the same values.
    pub fn display(&self) -> String {
        match self {
            RawArgs::Text(s) => s.clone(),
            RawArgs::Options(opts) => opts
                .iter()
                .map(|(name, v)| match v {
                    OptionValue::Text(s) => format!("{name}:{}", quoted(s)),
                    OptionValue::Integer(i) => format!("{name}:{i}"),
                    OptionValue::Boolean(b) => format!("{name}:{b}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Quotes a value for [`tokenize`], which knows `"…"` and `'…'` but no escapes (a value with
/// both kinds of quote is refused before it gets here).
fn quoted(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        v.to_owned()
    } else if !v.contains('"') {
        format!("\"{v}\"")
    } else {
        format!("'{v}'")
    }
}

/// One value of an option before it is typed.
enum Given {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

fn invalid(msg: impl Into<String>) -> UserError {
    UserError::InvalidArgument(msg.into())
}

/// Splits on whitespace; double or single quotes keep spaces (`grep:"connection refused"`).
pub fn tokenize(raw: &str) -> Result<Vec<String>, UserError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_token = false;
    for c in raw.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_token = true;
            }
            None if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            None => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid("a quote is not closed"));
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

/// What the parser needs to know about the world.
pub struct ArgContext<'a> {
    /// Longest accepted value, in characters (the settings' `max_arg_len`).
    pub max_arg_len: usize,
    /// Services of the live project; `None` when the command takes no service.
    pub known_services: Option<&'a BTreeSet<ServiceName>>,
    pub groups: &'a BTreeMap<GroupName, Vec<ServiceName>>,
}

/// Parses raw arguments against the command's options. Never panics on input.
pub fn parse(
    cmd: &Command,
    raw: impl Into<RawArgs>,
    cx: &ArgContext<'_>,
) -> Result<Args, UserError> {
    let given = match raw.into() {
        RawArgs::Text(text) => given_in_text(cmd, &text, cx)?,
        RawArgs::Options(opts) => given_as_options(cmd, opts, cx)?,
    };
    typed_args(cmd, given, cx)
}

/// Checks one text value against the option's length and alphabet.
fn check_text(opt: &OptionSpec, value: &str, cx: &ArgContext<'_>) -> Result<(), UserError> {
    let len = value.chars().count();
    let cap = opt.max_length.unwrap_or(cx.max_arg_len).min(cx.max_arg_len);
    if len > cap {
        return Err(invalid(format!(
            "`{}` is {len} characters long; the limit is {cap}",
            opt.name
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "`{}` contains control characters",
            opt.name
        )));
    }
    if let Some(c) = value.chars().find(|c| is_format_char(*c)) {
        return Err(invalid(format!(
            "`{}` contains the invisible character U+{:04X}, which can make text read other than it is; remove it",
            opt.name, c as u32
        )));
    }
    Ok(())
}

/// Unicode's format characters (category Cf): invisible, and able to reorder or hide text
/// (U+202E turns `exe.txt` around; U+200B splits a word a filter looks for).
pub fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// A value given once more for an option that takes one is an error.
fn add_given<'c>(
    given: &mut BTreeMap<&'c str, Vec<Given>>,
    opt: &'c OptionSpec,
    value: Given,
) -> Result<(), UserError> {
    let entry = given.entry(opt.name.as_str()).or_default();
    if !entry.is_empty() && !opt.multiple {
        return Err(invalid(format!("`{}` is given twice", opt.name)));
    }
    entry.push(value);
    Ok(())
}

/// A chat client's options: each names its option and carries a typed value.
fn given_as_options<'c>(
    cmd: &'c Command,
    opts: Vec<(String, OptionValue)>,
    cx: &ArgContext<'_>,
) -> Result<BTreeMap<&'c str, Vec<Given>>, UserError> {
    let mut given = BTreeMap::new();
    for (name, value) in opts {
        let Some(opt) = cmd.option(&name) else {
            return Err(invalid(format!(
                "`/{}` has no option {}; its options: {}",
                cmd.name,
                code(&name.chars().take(40).collect::<String>()),
                option_list(cmd)
            )));
        };
        let value = match value {
            OptionValue::Text(s) => {
                check_text(opt, &s, cx)?;
                if s.contains('"') && s.contains('\'') {
                    return Err(invalid(format!(
                        "`{}` contains both kinds of quotes; remove one kind",
                        opt.name
                    )));
                }
                Given::Text(s)
            }
            OptionValue::Integer(i) => Given::Integer(i),
            OptionValue::Boolean(b) => Given::Boolean(b),
        };
        add_given(&mut given, opt, value)?;
    }
    Ok(given)
}

/// A console line's arguments: `name:value` tokens, or the first option's value alone.
fn given_in_text<'c>(
    cmd: &'c Command,
    raw: &str,
    cx: &ArgContext<'_>,
) -> Result<BTreeMap<&'c str, Vec<Given>>, UserError> {
    let total_cap = cx.max_arg_len.saturating_mul(8).max(256);
    if raw.chars().count() > total_cap {
        return Err(invalid(format!(
            "the arguments are {} characters long; the limit is {total_cap}",
            raw.chars().count()
        )));
    }
    let mut given: BTreeMap<&str, Vec<Given>> = BTreeMap::new();
    let mut positional = 0usize;
    for tok in tokenize(raw)? {
        let named = tok.split_once(':').filter(|(k, _)| cmd.option(k).is_some());
        let (opt, value) = match named {
            Some((k, v)) => (cmd.option(k).expect("checked"), v.to_owned()),
            None => {
                if let Some((k, _)) = tok.split_once(':')
                    && !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
                {
                    return Err(invalid(format!(
                        "`/{}` has no option `{k}`; its options: {}",
                        cmd.name,
                        option_list(cmd)
                    )));
                }
                let Some(first) = cmd.options.first() else {
                    return Err(invalid(format!("`/{}` takes no arguments", cmd.name)));
                };
                positional += 1;
                if positional > 1 && !first.multiple {
                    return Err(invalid(format!(
                        "only `{}` may be given without a name; write the others as `name:value` ({})",
                        first.name,
                        option_list(cmd)
                    )));
                }
                (first, tok)
            }
        };
        check_text(opt, &value, cx)?;
        add_given(&mut given, opt, Given::Text(value))?;
    }
    Ok(given)
}

/// Every option typed, required ones present, the command's fixed params merged in.
fn typed_args(
    cmd: &Command,
    mut given: BTreeMap<&str, Vec<Given>>,
    cx: &ArgContext<'_>,
) -> Result<Args, UserError> {
    let mut args = Args::default();
    for opt in &cmd.options {
        match given.remove(opt.name.as_str()) {
            Some(values) => {
                let v = typed(cmd, opt, values, cx)?;
                args.values.insert(opt.name.clone(), v);
            }
            None if opt.required => {
                return Err(invalid(format!(
                    "`/{}` needs `{}` ({}); usage: `{}`",
                    cmd.name,
                    opt.name,
                    opt.description,
                    cmd.usage()
                )));
            }
            None => {}
        }
    }
    for (k, v) in &cmd.params {
        args.values.insert(k.clone(), v.into());
    }
    Ok(args)
}

fn option_list(cmd: &Command) -> String {
    if cmd.options.is_empty() {
        "none".into()
    } else {
        cmd.options
            .iter()
            .map(|o| format!("`{}`", o.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn typed(
    cmd: &Command,
    opt: &OptionSpec,
    given: Vec<Given>,
    cx: &ArgContext<'_>,
) -> Result<ArgValue, UserError> {
    // Integers and booleans a chat client typed are taken as they are.
    match (opt.kind, &given[..]) {
        (OptionType::Integer, [Given::Integer(i)]) => return integer(opt, *i),
        (OptionType::Boolean, [Given::Boolean(b)]) => return Ok(ArgValue::Boolean(*b)),
        _ => {}
    }
    let values: Vec<String> = given
        .into_iter()
        .map(|g| match g {
            Given::Text(s) => s,
            Given::Integer(i) => i.to_string(),
            Given::Boolean(b) => b.to_string(),
        })
        .collect();
    let single = || values[0].clone();
    let check_choice = |v: &str| -> Result<(), UserError> {
        if !opt.choices.is_empty() && !opt.choices.iter().any(|c| c == v) {
            return Err(invalid(format!(
                "`{}` must be one of: {}",
                opt.name,
                opt.choices.join(", ")
            )));
        }
        Ok(())
    };
    Ok(match opt.kind {
        OptionType::String => {
            let v = single();
            check_choice(&v)?;
            ArgValue::String(v)
        }
        OptionType::Integer => {
            let v = single();
            let i: i64 = v.parse().map_err(|_| {
                invalid(format!(
                    "`{}` must be a whole number, not {}",
                    opt.name,
                    code(&v)
                ))
            })?;
            integer(opt, i)?
        }
        OptionType::Boolean => {
            let v = single();
            ArgValue::Boolean(match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => {
                    return Err(invalid(format!(
                        "`{}` must be true or false, not {}",
                        opt.name,
                        code(&v)
                    )));
                }
            })
        }
        OptionType::Duration => {
            let v = single();
            ArgValue::Duration(
                parse_duration(&v).map_err(|e| invalid(format!("`{}`: {e}", opt.name)))?,
            )
        }
        OptionType::Group => {
            let v = single();
            let g = GroupName::parse(&v)
                .ok()
                .filter(|g| cx.groups.contains_key(g))
                .ok_or_else(|| {
                    UserError::NotFound(format!(
                        "unknown group {}; known: {}",
                        code(&v),
                        cx.groups
                            .keys()
                            .map(|g| format!("`{g}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            ArgValue::Group(g)
        }
        OptionType::Service => {
            let mut out: Vec<ServiceName> = Vec::new();
            for raw in values
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let s =
                    ServiceName::parse(raw).map_err(|e| invalid(format!("`{}`: {e}", opt.name)))?;
                let is_service = cx.known_services.is_none_or(|k| k.contains(&s));
                // A group name where services are expected stands for its members
                // (`/logs infra`); each member is still checked against the policy.
                let group = GroupName::parse(raw).ok().and_then(|g| cx.groups.get(&g));
                if let (false, Some(members)) = (is_service && cx.known_services.is_some(), group) {
                    for m in members {
                        if !out.contains(m) {
                            out.push(m.clone());
                        }
                    }
                    continue;
                }
                if !is_service {
                    let mut msg = format!(
                        "unknown service `{s}`; known: {}",
                        cx.known_services
                            .into_iter()
                            .flatten()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    if opt.multiple && !cx.groups.is_empty() {
                        msg.push_str(&format!(
                            "; groups: {}",
                            cx.groups
                                .keys()
                                .map(|g| format!("`{g}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    return Err(UserError::NotFound(msg));
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            if out.is_empty() {
                return Err(invalid(format!("`{}` needs a service name", opt.name)));
            }
            if out.len() > 1 && !opt.multiple {
                return Err(invalid(format!(
                    "`/{}` takes one service in `{}`",
                    cmd.name, opt.name
                )));
            }
            ArgValue::Services(out)
        }
    })
}

/// An integer within the option's choices and bounds.
fn integer(opt: &OptionSpec, i: i64) -> Result<ArgValue, UserError> {
    if !opt.choices.is_empty() && !opt.choices.iter().any(|c| *c == i.to_string()) {
        return Err(invalid(format!(
            "`{}` must be one of: {}",
            opt.name,
            opt.choices.join(", ")
        )));
    }
    if opt.min.is_some_and(|m| i < m) || opt.max.is_some_and(|m| i > m) {
        return Err(invalid(format!(
            "`{}` must be between {} and {}",
            opt.name,
            opt.min.map_or("…".into(), |m| m.to_string()),
            opt.max.map_or("…".into(), |m| m.to_string())
        )));
    }
    Ok(ArgValue::Integer(i))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::core::catalog::Catalog;

    fn catalog() -> Catalog {
        let groups = ["app", "infra"]
            .iter()
            .map(|g| GroupName::parse(g).unwrap())
            .collect();
        Catalog::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("commands"),
            &groups,
        )
        .unwrap()
    }

    fn known() -> BTreeSet<ServiceName> {
        ["api-1", "api-2", "worker-1", "postgres"]
            .iter()
            .map(|s| ServiceName::parse(s).unwrap())
            .collect()
    }

    fn run(cmd: &str, raw: &str) -> Result<Args, UserError> {
        let c = catalog();
        let k = known();
        let groups = BTreeMap::new();
        parse(
            c.get(cmd).unwrap(),
            raw,
            &ArgContext {
                max_arg_len: 200,
                known_services: Some(&k),
                groups: &groups,
            },
        )
    }

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    #[test]
    fn typed_options_are_taken_as_typed_and_display_as_text_that_parses_back_the_same() {
        let c = catalog();
        let k = known();
        let groups = BTreeMap::new();
        let cx = ArgContext {
            max_arg_len: 200,
            known_services: Some(&k),
            groups: &groups,
        };
        let logs = c.get("logs").unwrap();
        for grep in ["connection refused", "say \"hi\" now", "it's", ""] {
            let raw = RawArgs::Options(vec![
                ("service".into(), OptionValue::Text("api-1".into())),
                ("tail".into(), OptionValue::Integer(50)),
                ("timestamps".into(), OptionValue::Boolean(true)),
                ("grep".into(), OptionValue::Text(grep.into())),
            ]);
            let typed = parse(logs, raw.clone(), &cx).unwrap();
            assert_eq!(typed.integer("tail"), Some(50));
            assert_eq!(typed.boolean("timestamps"), Some(true));
            assert_eq!(typed.string("grep"), Some(grep));
            let text = raw.display();
            assert_eq!(parse(logs, text.as_str(), &cx).unwrap(), typed, "{text}");
        }
        let both = RawArgs::Options(vec![(
            "grep".into(),
            OptionValue::Text("both \" and '".into()),
        )]);
        let e = parse(logs, both, &cx).unwrap_err();
        assert!(e.to_string().contains("both kinds of quotes"), "{e}");
        let out_of_range = RawArgs::Options(vec![("tail".into(), OptionValue::Integer(0))]);
        assert!(parse(logs, out_of_range, &cx).is_err());
        let unknown = RawArgs::Options(vec![("colour".into(), OptionValue::Text("red".into()))]);
        assert!(
            parse(logs, unknown, &cx)
                .unwrap_err()
                .to_string()
                .contains("no option `colour`")
        );
    }

    #[test]
    fn invisible_format_characters_are_refused_like_control_characters() {
        let c = catalog();
        let k = known();
        let groups = BTreeMap::new();
        let cx = ArgContext {
            max_arg_len: 200,
            known_services: Some(&k),
            groups: &groups,
        };
        let logs = c.get("logs").unwrap();
        for ch in [
            '\u{202E}', '\u{200B}', '\u{200F}', '\u{2066}', '\u{2069}', '\u{FEFF}',
        ] {
            let text = format!("api-1 grep:err{ch}or");
            let e = parse(logs, text.as_str(), &cx).unwrap_err();
            assert!(e.to_string().contains("invisible character"), "{ch:?}: {e}");
            let typed =
                RawArgs::Options(vec![("grep".into(), OptionValue::Text(format!("a{ch}b")))]);
            assert!(parse(logs, typed, &cx).is_err(), "{ch:?} as an option");
        }
        assert!(
            parse(logs, "api-1 grep:naïve€", &cx).is_ok(),
            "other non-ASCII text is fine"
        );
    }

    #[test]
    fn named_tokens_become_typed_values() {
        let a = run(
            "logs",
            "service:api-1 tail:50 grep:\"connection refused\" timestamps:yes since:10m",
        )
        .unwrap();
        assert_eq!(a.services("service").unwrap(), [svc("api-1")]);
        assert_eq!(a.integer("tail"), Some(50));
        assert_eq!(a.string("grep"), Some("connection refused"));
        assert_eq!(a.boolean("timestamps"), Some(true));
        assert_eq!(a.duration("since"), Some(Duration::from_secs(600)));
    }

    #[test]
    fn positional_first_option_and_several_services() {
        let a = run("logs", "api-1 api-2 tail:5").unwrap();
        assert_eq!(a.services("service").unwrap(), [svc("api-1"), svc("api-2")]);
        let a = run("logs", "service:api-1,worker-1 service:api-1").unwrap();
        assert_eq!(
            a.services("service").unwrap(),
            [svc("api-1"), svc("worker-1")]
        );
    }

    #[test]
    fn unknown_service_is_refused_with_the_list_of_services() {
        let e = run("restart", "service:api-3").unwrap_err();
        let UserError::NotFound(msg) = e else {
            panic!("expected not found, got {e:?}")
        };
        assert!(msg.contains("unknown service `api-3`"), "{msg}");
        assert!(
            msg.contains("`api-1`, `api-2`, `postgres`, `worker-1`"),
            "{msg}"
        );
    }

    #[test]
    fn oversized_argument_is_refused() {
        let e = run("logs", &format!("service:api-1 grep:{}", "e".repeat(101))).unwrap_err();
        assert!(
            matches!(&e, UserError::InvalidArgument(m) if m.contains("limit is 100")),
            "{e:?}"
        );
        let e = run("logs", &format!("service:api-1 {}", "x".repeat(5000))).unwrap_err();
        assert!(
            matches!(&e, UserError::InvalidArgument(m) if m.contains("limit is")),
            "{e:?}"
        );
    }

    #[test]
    fn missing_required_option_shows_usage() {
        let e = run("logs", "tail:5").unwrap_err();
        assert!(
            matches!(&e, UserError::InvalidArgument(m) if m.contains("needs `service`") && m.contains("/logs service:")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_option_lists_the_options() {
        let e = run("logs", "service:api-1 follow:true").unwrap_err();
        assert!(
            matches!(&e, UserError::InvalidArgument(m) if m.contains("no option `follow`") && m.contains("`tail`")),
            "{e:?}"
        );
    }

    #[test]
    fn integers_respect_their_bounds_and_types() {
        assert!(run("logs", "service:api-1 tail:0").is_err());
        assert!(run("logs", "service:api-1 tail:2001").is_err());
        assert!(run("logs", "service:api-1 tail:lots").is_err());
        assert!(run("logs", "service:api-1 timestamps:maybe").is_err());
    }

    #[test]
    fn a_group_name_stands_for_its_services() {
        let c = catalog();
        let k = known();
        let groups: BTreeMap<GroupName, Vec<ServiceName>> = [(
            GroupName::parse("infra").unwrap(),
            vec![svc("postgres"), svc("redis")],
        )]
        .into_iter()
        .collect();
        let cx = ArgContext {
            max_arg_len: 200,
            known_services: Some(&k),
            groups: &groups,
        };
        let a = parse(c.get("logs").unwrap(), "infra api-1", &cx).unwrap();
        assert_eq!(
            a.services("service").unwrap(),
            [svc("postgres"), svc("redis"), svc("api-1")]
        );
        assert!(
            parse(c.get("restart").unwrap(), "infra", &cx).is_err(),
            "one-service commands take no group"
        );
        let e = parse(c.get("logs").unwrap(), "edge", &cx).unwrap_err();
        assert!(e.to_string().contains("groups: `infra`"), "{e}");
    }

    #[test]
    fn one_service_commands_refuse_two() {
        assert!(run("restart", "service:api-1,api-2").is_err());
    }

    #[test]
    fn control_characters_and_open_quotes_are_refused() {
        assert!(run("logs", "service:api-1 grep:\"a\u{1b}[2J\"").is_err());
        assert!(run("logs", "service:api-1 grep:\"open").is_err());
    }

    #[test]
    fn fixed_params_are_merged_in() {
        let a = run("restart-app", "").unwrap();
        assert_eq!(a.duration("timeout"), Some(Duration::from_secs(10)));
        assert!(run("restart-app", "extra").is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn groups() -> BTreeMap<GroupName, Vec<ServiceName>> {
            [(
                GroupName::parse("app").unwrap(),
                vec![svc("api-1"), svc("worker-1")],
            )]
            .into_iter()
            .collect()
        }

        /// Text that looks like what people type: option keys, quotes, separators, shell
        /// metacharacters, path pieces, control characters, U+FFFD and other non-ASCII.
        fn typed_text() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("service:".to_owned()),
                Just("tail:".to_owned()),
                Just("grep:".to_owned()),
                Just("since:".to_owned()),
                Just("timestamps:".to_owned()),
                Just("api-1".to_owned()),
                Just("app".to_owned()),
                Just("../x".to_owned()),
                Just("; rm -rf /".to_owned()),
                Just("\"".to_owned()),
                Just("'".to_owned()),
                Just(",".to_owned()),
                Just(" ".to_owned()),
                Just("\u{fffd}\u{0}\u{1b}[2J\u{7f}".to_owned()),
                Just("\\ud800".to_owned()),
                "[0-9]{1,25}".prop_map(|s| s),
                any::<String>(),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Whatever is typed, every command either parses or refuses with a short user
            /// error: never a panic, never an internal error, never a wall of text.
            #[test]
            fn any_text_parses_or_is_a_short_user_error(
                raw in prop_oneof![any::<String>(), typed_text()],
            ) {
                let c = catalog();
                let k = known();
                let g = groups();
                let cx = ArgContext { max_arg_len: 200, known_services: Some(&k), groups: &g };
                for cmd in c.iter() {
                    match parse(cmd, raw.as_str(), &cx) {
                        Ok(_) => {}
                        Err(e @ (UserError::InvalidArgument(_) | UserError::NotFound(_))) => {
                            let md = e.markdown();
                            prop_assert!(md.chars().count() < 700, "/{}: {} chars: {md}", cmd.name, md.chars().count());
                        }
                        Err(other) => prop_assert!(false, "/{}: unexpected {other:?}", cmd.name),
                    }
                }
            }

            /// Valid `/logs` arguments, in any order and either form of the service option,
            /// parse back to exactly the values they were written from.
            #[test]
            fn valid_logs_arguments_round_trip(
                services in prop::sample::subsequence(vec!["api-1", "api-2", "postgres", "worker-1"], 1..=4),
                tail in prop::option::of(1i64..=2000),
                grep in prop::option::of("[a-zA-Z0-9=._-][a-zA-Z0-9 =._-]{0,98}"),
                since_minutes in prop::option::of(1u64..=10_000),
                timestamps in prop::option::of(any::<bool>()),
                positional in any::<bool>(),
                order in any::<u64>(),
            ) {
                let service_token = if positional {
                    services.join(" ")
                } else {
                    format!("service:{}", services.join(","))
                };
                let mut named = Vec::new();
                if let Some(t) = tail { named.push(format!("tail:{t}")); }
                if let Some(g) = &grep { named.push(format!("grep:\"{g}\"")); }
                if let Some(m) = since_minutes { named.push(format!("since:{m}m")); }
                if let Some(b) = timestamps { named.push(format!("timestamps:{b}")); }
                // Named options may come in any order, before or after the services.
                if !named.is_empty() {
                    let k = (order / 7) as usize % named.len();
                    named.rotate_left(k);
                }
                let mut slots = named;
                let at = (order as usize) % (slots.len() + 1);
                slots.insert(at, service_token);
                let raw = slots.join(" ");

                let a = run("logs", &raw).map_err(|e| TestCaseError::fail(format!("{raw:?}: {e}")))?;
                let want: Vec<ServiceName> = services.iter().map(|s| svc(s)).collect();
                prop_assert_eq!(a.services("service"), Some(want.as_slice()), "{}", raw);
                prop_assert_eq!(a.integer("tail"), tail);
                prop_assert_eq!(a.string("grep"), grep.as_deref());
                prop_assert_eq!(a.duration("since"), since_minutes.map(|m| Duration::from_secs(m * 60)));
                prop_assert_eq!(a.boolean("timestamps"), timestamps);
            }
        }
    }
}
