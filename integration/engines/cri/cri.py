"""A minimal CRI client (kubelet's side of the CRI v1 RuntimeService), for systemd.sh.

usage: python3 cri.py PB_DIR ENDPOINT
  PB_DIR    where protoc put api_pb2.py (protoc --python_out=PB_DIR api.proto)
  ENDPOINT  unix:///path/to/containerd.sock
Reads requests, one a line: "METHOD JSON" (METHOD of runtime.v1.RuntimeService, JSON the request
message with the proto field names), and answers each with one line of JSON: the response
message ({} for an empty one; ExecSync's stdout/stderr as text), or {"error": CODE, "message":
...} when the call failed. One process serves every call: importing grpc costs seconds under
QEMU's TCG.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import api_pb2  # noqa: E402

SERVICE = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]


def main():
    channel = grpc.insecure_channel(sys.argv[2])
    for line in sys.stdin:
        method, _, body = line.strip().partition(" ")
        try:
            m = SERVICE.methods_by_name[method]
        except KeyError:
            print(json.dumps({"error": "UNKNOWN_METHOD", "message": method}), flush=True)
            continue
        req_cls = getattr(api_pb2, m.input_type.name)
        resp_cls = getattr(api_pb2, m.output_type.name)
        call = channel.unary_unary(
            "/runtime.v1.RuntimeService/" + method,
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        try:
            req = json_format.ParseDict(json.loads(body or "{}"), req_cls())
            resp = call(req, timeout=120)
        except grpc.RpcError as e:
            out = {"error": e.code().name, "message": e.details()}
        except Exception as e:  # a malformed request: say so, keep serving
            out = {"error": type(e).__name__, "message": str(e)}
        else:
            out = json_format.MessageToDict(resp, preserving_proto_field_name=True)
            if isinstance(resp, api_pb2.ExecSyncResponse):
                out["stdout"] = resp.stdout.decode(errors="replace")
                out["stderr"] = resp.stderr.decode(errors="replace")
                out["exit_code"] = resp.exit_code
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
