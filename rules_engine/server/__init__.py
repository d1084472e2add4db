"""The process: the gRPC server, its supervisor, watcher, interceptors, limits and security."""
