"""Operations that change the server's data from the command line: run
locally, or by a running server through its admin XML-RPC methods."""
