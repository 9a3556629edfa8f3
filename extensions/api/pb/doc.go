// Package pb is the generated Go code of the extension control RPC, the
// gRPC service xvs.extension.v1.Extension in extension.proto: its messages
// and its client and server stubs, which package extensions (the switch's
// side) and package extensions/sdk (the extension's side) use. It is
// called when an extension starts and stops, when the switch's ports
// change and for counters, never per frame: frames cross the shared memory
// of package extensions/api.
//
// The .pb.go files are generated from extension.proto (protoc with
// protoc-gen-go and protoc-gen-go-grpc; the versions are in their
// headers): change the .proto and generate them again, never edit them.
package pb
