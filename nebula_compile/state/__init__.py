"""The state store that `nebula apply` writes and the runtime serves from."""

from nebula_compile.state.store import ApplyResult, LockTimeout, StateError, Store

__all__ = ["ApplyResult", "LockTimeout", "StateError", "Store"]
