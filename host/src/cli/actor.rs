//! Who runs this CLI process, for the audit log's `actor`.
//!
//! A CLI request is made by whoever runs `latch` on the connector's machine: the effective
//! user of the process (from the kernel, not from `$USER`, which anyone can set), named from
//! the local account database when it is there (`os-user:alice`), else by number
//! (`os-user:uid=1000`). The requester named with `--user` is the *subject* of a grant, never
//! its actor.

use std::os::unix::fs::MetadataExt;

/// `os-user:NAME` for the effective user of this process.
pub fn os_actor() -> String {
    let uid = match std::fs::metadata("/proc/self") {
        Ok(m) => m.uid(),
        Err(_) => return "os-user:unknown".into(),
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| name_of(&passwd, uid));
    match name {
        Some(name) => format!("os-user:{name}"),
        None => format!("os-user:uid={uid}"),
    }
}

/// The name of `uid` in a passwd file's text, if it is a plain account name.
fn name_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-$".contains(&b));
        (uid_field.parse::<u32>().ok() == Some(uid) && plain).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_uid_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n\
                      evil\nbad name:x:1001:1001::/:/bin/sh\n";
        assert_eq!(name_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_of(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(name_of(passwd, 1001), None, "not a plain name");
        assert_eq!(name_of(passwd, 4242), None);
        // This process's actor is never the bare "cli" of old, and never empty.
        let me = os_actor();
        assert!(
            me.starts_with("os-user:") && me.len() > "os-user:".len(),
            "{me}"
        );
    }
}
