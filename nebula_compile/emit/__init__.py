"""Emitters: one function per target, `emit(graph, context) -> Bundle`.

EMITTERS is the whole list, in the order their files are reported.
"""

from collections.abc import Callable

from nebula_compile.emit.bundle import Bundle
from nebula_compile.emit.context import EmitContext
from nebula_compile.emit.images import emit_images
from nebula_compile.emit.kubernetes import emit_kubernetes
from nebula_compile.emit.monitoring import emit_monitoring
from nebula_compile.emit.pipelines import emit_pipelines
from nebula_compile.emit.serverless import emit_serverless
from nebula_compile.emit.stacks import emit_stacks
from nebula_compile.emit.sync import emit_sync
from nebula_compile.ir.graph import ResourceGraph

Emitter = Callable[[ResourceGraph, EmitContext], Bundle]

EMITTERS: tuple[Emitter, ...] = (
    emit_kubernetes,
    emit_monitoring,
    emit_pipelines,
    emit_images,
    emit_serverless,
    emit_stacks,
    emit_sync,
)

__all__ = ["EMITTERS", "Bundle", "EmitContext", "Emitter"]
