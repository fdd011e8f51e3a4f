//! runc's `slice:prefix:name` cgroupsPath for the systemd driver: which unit a container gets,
//! in which slice, and where that puts its cgroup.

use std::path::PathBuf;

use super::super::CgroupError;

/// The unit a container lives in.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitName {
    /// `docker-ID.scope`, or a `….slice` when the name asks for one.
    pub unit: String,
    /// The slice the unit goes in (`system.slice`, `user.slice` rootless, or the path's).
    pub slice: String,
}

impl UnitName {
    /// `cgroups_path` of the form `slice:prefix:name` (empty parts allowed); none or empty:
    /// `:gpurun:ID`, as runc's default is `:runc:ID`.
    pub fn parse(
        cgroups_path: Option<&str>,
        id: &str,
        rootless: bool,
    ) -> Result<Self, CgroupError> {
        let default = format!(":gpurun:{id}");
        let path = cgroups_path.filter(|p| !p.is_empty()).unwrap_or(&default);
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(CgroupError::Invalid(format!(
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {path:?} instead"
            )));
        };
        let slice = match slice {
            "" if rootless => "user.slice",
            "" => "system.slice",
            s => s,
        };
        expand_slice(slice)?;
        let unit = if name.ends_with(".slice") {
            expand_slice(name)?;
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if name.is_empty() || unit.contains('/') {
            return Err(CgroupError::Invalid(format!(
                "cgroupsPath {path:?}: invalid unit name {unit:?}"
            )));
        }
        Ok(UnitName {
            unit,
            slice: slice.to_string(),
        })
    }

    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The unit's cgroup relative to its manager's root: `/system.slice/docker-ID.scope`
    /// (a slice's name alone says where it lives).
    pub fn cgroup(&self) -> PathBuf {
        if self.is_slice() {
            expand_slice(&self.unit).expect("checked by parse")
        } else {
            expand_slice(&self.slice)
                .expect("checked by parse")
                .join(&self.unit)
        }
    }
}

/// systemd's slice nesting: `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`; `-.slice`
/// is the root.
pub fn expand_slice(slice: &str) -> Result<PathBuf, CgroupError> {
    let invalid = || CgroupError::Invalid(format!("invalid slice name {slice:?}"));
    let name = slice.strip_suffix(".slice").ok_or_else(invalid)?;
    if slice.contains('/') {
        return Err(invalid());
    }
    let mut path = PathBuf::from("/");
    if name == "-" {
        return Ok(path);
    }
    if name.is_empty() || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(invalid());
    }
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_path_rules() {
        let u = UnitName::parse(Some("system.slice:docker:abc"), "x", false).unwrap();
        assert_eq!(u.unit, "docker-abc.scope");
        assert_eq!(u.cgroup(), PathBuf::from("/system.slice/docker-abc.scope"));
        let u = UnitName::parse(Some(":cri-containerd:abc"), "x", false).unwrap();
        assert_eq!(
            (u.slice.as_str(), u.unit.as_str()),
            ("system.slice", "cri-containerd-abc.scope")
        );
        let u = UnitName::parse(Some("::abc"), "x", true).unwrap();
        assert_eq!(u.cgroup(), PathBuf::from("/user.slice/abc.scope"));
        let u = UnitName::parse(
            Some("kubepods-besteffort-pod1.slice:cri-containerd:c1"),
            "x",
            false,
        )
        .unwrap();
        assert_eq!(
            u.cgroup(),
            PathBuf::from("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope")
        );
        let u = UnitName::parse(Some("system.slice:x:my-app.slice"), "x", false).unwrap();
        assert!(u.is_slice());
        assert_eq!(u.cgroup(), PathBuf::from("/my.slice/my-app.slice"));
        let u = UnitName::parse(None, "c1", false).unwrap();
        assert_eq!(u.unit, "gpurun-c1.scope");
        for bad in [
            "/a/b",
            "a:b",
            "a:b:c:d",
            "bad:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "system.slice:p:",
        ] {
            assert!(UnitName::parse(Some(bad), "x", false).is_err(), "{bad}");
        }
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
    }
}
