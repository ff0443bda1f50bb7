//! Typed config parsing: the integration's `config` JSON into a struct, with errors that name
//! the field (`servers[2].port: invalid value: integer 70000, expected u16`).
//!
//! Config structs should use `#[serde(deny_unknown_fields)]`, so a typo is an error.

use serde::de::DeserializeOwned;

use crate::{Error, invalid_config};

/// Parse `json` into `T`; the error names the path of the offending field.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid_config(inner.to_string())
        } else {
            invalid_config(format!("{path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Server {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        port: u16,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[allow(dead_code)]
        servers: Vec<Server>,
    }

    fn err(json: &str) -> String {
        match parse::<Config>(json).unwrap_err() {
            Error::InvalidConfig(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(r#"{"servers":[{"name":"a"},{"name":"b","port":70000}]}"#);
        assert!(e.starts_with("servers[1].port:"), "{e}");
        let e = err(r#"{"servers":[{"name":"a","prot":22}]}"#);
        assert!(e.contains("servers[0]") && e.contains("prot"), "{e}");
        let e = err(r#"{"servers":5}"#);
        assert!(e.starts_with("servers:"), "{e}");
        assert!(parse::<Config>(r#"{"servers":[]}"#).is_ok());
    }
}
