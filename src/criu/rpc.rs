//! CRIU's RPC messages (`images/rpc.proto`, proto2): the fields gpurun uses, with the proto's
//! tags. Hand-written prost structs so the build needs no protoc.

#![allow(clippy::derive_partial_eq_without_eq)]

/// `criu_req_type`.
pub const DUMP: i32 = 1;
pub const RESTORE: i32 = 2;
pub const PRE_DUMP: i32 = 4;
pub const NOTIFY: i32 = 6;
pub const VERSION: i32 = 10;

/// `criu_cg_mode`.
pub const CG_IGNORE: i32 = 0;
pub const CG_SOFT: i32 = 3;
pub const CG_FULL: i32 = 4;
pub const CG_STRICT: i32 = 5;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub val: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}

/// `join_namespace`: an existing namespace the restored tasks join (ipc, uts).
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: String,
    #[prost(string, required, tag = "2")]
    pub ns_file: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: Option<String>,
    #[prost(string, required, tag = "2")]
    pub path: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuOpts {
    #[prost(int32, required, tag = "1", default = "-1")]
    pub images_dir_fd: i32,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub log_level: Option<i32>,
    #[prost(string, optional, tag = "10")]
    pub log_file: Option<String>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: Option<String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: Option<i32>,
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: Vec<ExtMountMap>,
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: Vec<CgroupRoot>,
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: Option<bool>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: Vec<JoinNamespace>,
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: Vec<InheritFd>,
    #[prost(int32, optional, tag = "34")]
    pub manage_cgroups_mode: Option<i32>,
    #[prost(string, repeated, tag = "37")]
    pub external: Vec<String>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: Option<String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: Option<u32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: Option<bool>,
    #[prost(string, optional, tag = "53")]
    pub lsm_profile: Option<String>,
    #[prost(string, optional, tag = "63")]
    pub lsm_mount_context: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuReq {
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: Option<CriuOpts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuRestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuNotify {
    #[prost(string, optional, tag = "1")]
    pub script: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuVersion {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CriuResp {
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "4")]
    pub restore: Option<CriuRestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: Option<CriuNotify>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: Option<i32>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: Option<String>,
    #[prost(message, optional, tag = "10")]
    pub version: Option<CriuVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn req_encodes_with_rpc_proto_tags() {
        let req = CriuReq {
            r#type: DUMP,
            opts: Some(CriuOpts {
                images_dir_fd: 5,
                pid: Some(42),
                ..Default::default()
            }),
            notify_success: None,
        };
        // type=1 (tag 1 varint), opts (tag 2, len 4): images_dir_fd=5 (tag 1), pid=42 (tag 2)
        assert_eq!(req.encode_to_vec(), [0x08, 1, 0x12, 4, 0x08, 5, 0x10, 42]);
    }

    #[test]
    fn resp_decodes() {
        // type=RESTORE, success=true, restore{pid=77}
        let resp = CriuResp::decode(&[0x08, 2, 0x10, 1, 0x22, 2, 0x08, 77][..]).unwrap();
        assert!(resp.success);
        assert_eq!(resp.restore.unwrap().pid, 77);
    }
}
