//! Compose's variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
//! `${VAR+alt}` (defaults may nest) and `$$` for a literal `$`, from the
//! run's environment.

/// Looks a variable up (the run's environment).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The environment environment.d gave the run, once it is sourced (compose files are
/// interpolated from it; before it, or outside a run, from orc's own environment).
static RUN_ENV: std::sync::RwLock<Option<crate::envd::Env>> = std::sync::RwLock::new(None);

/// Records the run's environment (the runner calls this after sourcing environment.d).
pub fn set_run_env(env: &crate::envd::Env) {
    *RUN_ENV.write().expect("no poisoning") = Some(env.clone());
}

/// A variable of the run's environment (see [`set_run_env`]).
pub fn run_var(name: &str) -> Option<String> {
    match &*RUN_ENV.read().expect("no poisoning") {
        Some(env) => env
            .get(std::ffi::OsStr::new(name))
            .map(|v| v.to_string_lossy().into_owned()),
        None => std::env::var(name).ok(),
    }
}

/// `text` with every reference replaced; `unset` collects names used but not set (compose
/// warns and substitutes an empty string). An error is compose's message.
pub fn interpolate(text: &str, env: Lookup, unset: &mut Vec<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let Some(off) = text[i..].find('$') else {
            out.push_str(&text[i..]);
            break;
        };
        out.push_str(&text[i..i + off]);
        i += off + 1;
        match b.get(i) {
            Some(b'$') => {
                out.push('$');
                i += 1;
            }
            Some(b'{') => {
                let end = closing(text, i + 1).ok_or_else(|| {
                    format!("invalid interpolation format in {text:?}: an unclosed ${{")
                })?;
                out.push_str(&braced(&text[i + 1..end], env, unset)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let n = name_len(&text[i..]);
                out.push_str(&get(&text[i..i + n], env, unset));
                i += n;
            }
            _ => {
                return Err(format!(
                    "invalid interpolation format in {text:?}: a lone $ (write $$ for a literal $)"
                ));
            }
        }
    }
    Ok(out)
}

fn name_len(s: &str) -> usize {
    s.bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .unwrap_or(s.len())
}

/// The index of the `}` closing a `${` whose body starts at `from` (nested `${` counted).
fn closing(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn get(name: &str, env: Lookup, unset: &mut Vec<String>) -> String {
    env(name).unwrap_or_else(|| {
        if !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
        String::new()
    })
}

/// The body of `${...}`.
fn braced(body: &str, env: Lookup, unset: &mut Vec<String>) -> Result<String, String> {
    let n = name_len(body);
    let name = &body[..n];
    if n == 0 || !(body.as_bytes()[0].is_ascii_alphabetic() || body.as_bytes()[0] == b'_') {
        return Err(format!("invalid interpolation format: ${{{body}}}"));
    }
    let rest = &body[n..];
    if rest.is_empty() {
        return Ok(get(name, env, unset));
    }
    let value = env(name);
    let (colon, op, arg) = match rest.strip_prefix(':') {
        Some(r) => (true, r.chars().next(), r.get(1..).unwrap_or("")),
        None => (false, rest.chars().next(), &rest[1..]),
    };
    let missing = match &value {
        None => true,
        Some(v) => colon && v.is_empty(),
    };
    match op {
        Some('-') if missing => interpolate(arg, env, unset),
        Some('-') => Ok(value.unwrap_or_default()),
        Some('+') if missing => Ok(String::new()),
        Some('+') => interpolate(arg, env, unset),
        Some('?') if missing => {
            let why = interpolate(arg, env, unset)?;
            Err(format!(
                "required variable {name} is missing a value: {why}"
            ))
        }
        Some('?') => Ok(value.unwrap_or_default()),
        _ => Err(format!("invalid interpolation format: ${{{body}}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str) -> Result<String, String> {
        let env = |k: &str| match k {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        interpolate(t, &env, &mut Vec::new())
    }

    #[test]
    fn compose_rules() {
        for (t, want) in [
            ("plain", "plain"),
            ("$SET/${SET}x", "v/vx"),
            ("a$$b $${SET}", "a$b ${SET}"),
            ("${UNSET}", ""),
            ("${UNSET:-d}|${EMPTY:-d}|${SET:-d}", "d|d|v"),
            ("${UNSET-d}|${EMPTY-d}|${SET-d}", "d||v"),
            ("${UNSET:+a}|${EMPTY:+a}|${SET:+a}|${EMPTY+a}", "||a|a"),
            ("${UNSET:-${SET}-x}", "v-x"),
            ("${UNSET:-a:b}", "a:b"),
            ("${SET:?boom}|${EMPTY?boom}", "v|"),
        ] {
            assert_eq!(run(t).as_deref(), Ok(want), "{t}");
        }
        assert_eq!(
            run("${EMPTY:?set the password}").unwrap_err(),
            "required variable EMPTY is missing a value: set the password"
        );
        assert!(run("${UNSET?x}").is_err());
        for bad in ["${", "${SET", "$ x", "${1A}", "${SET!x}", "a$"] {
            assert!(run(bad).is_err(), "{bad}");
        }
        let mut unset = Vec::new();
        interpolate("$A ${A} ${B:-x}", &|_| None, &mut unset).unwrap();
        assert_eq!(unset, ["A"]);
    }
}
