"""The gRPC edge: the servicer, requests parsed into cases, results encoded as responses."""
