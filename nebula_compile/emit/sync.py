"""emit_sync: the objects that make Argo CD or Flux sync the deploy branch.

`nebula apply` commits each environment's rendered output to the deploy branch
under `<environment>/`; these objects point a GitOps controller at
`<environment>/kubernetes` on that branch. Written when `platform.repository` is set.
"""

from __future__ import annotations

from nebula_compile.emit.bundle import Bundle
from nebula_compile.emit.context import EmitContext
from nebula_compile.emit.kube import k8s, labels
from nebula_compile.emit.yamlout import dump, dump_all
from nebula_compile.ir.graph import ResourceGraph


def emit_sync(graph: ResourceGraph, context: EmitContext) -> Bundle:
    repository = graph.platform.get("repository")
    if not repository:
        return Bundle({})
    env = graph.environment
    name = f"{graph.platform['name']}-{env}"
    branch = str(graph.platform["deploy_branch"])
    path = f"{env}/kubernetes"
    obj_labels = labels(env)
    application = k8s(
        "argoproj.io/v1alpha1",
        "Application",
        name,
        "argocd",
        obj_labels,
        spec={
            "project": "default",
            "source": {"repoURL": repository, "targetRevision": branch, "path": path},
            "destination": {"server": "https://kubernetes.default.svc"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "syncOptions": ["ServerSideApply=true"]},
        },
    )
    source = k8s(
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        name,
        "flux-system",
        obj_labels,
        spec={"interval": "1m0s", "url": repository, "ref": {"branch": branch}},
    )
    kustomization = k8s(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        name,
        "flux-system",
        obj_labels,
        spec={
            "interval": "5m0s",
            "path": f"./{path}",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": name},
            "timeout": "3m0s",
        },
    )
    return Bundle(
        {"gitops/argocd-application.yaml": dump(application), "gitops/flux.yaml": dump_all([source, kustomization])},
        (),
        {
            "gitops/argocd-application.yaml#0": application,
            "gitops/flux.yaml#0": source,
            "gitops/flux.yaml#1": kustomization,
        },
    )
