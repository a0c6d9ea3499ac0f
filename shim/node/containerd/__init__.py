"""containerd 1.6 API: the generated protobuf/gRPC modules, the async client, a managed instance."""
