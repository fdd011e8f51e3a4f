//! CRIU's RPC messages (`images/rpc.proto`): the fields gpurun uses.
// helper-owned: to be written
