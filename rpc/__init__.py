"""The gRPC layer: the servicer (an adapter that maps protobuf to the domain and errors to
status codes in one place), the server, the client, the status table and the limits."""
