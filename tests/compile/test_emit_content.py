"""What the emitted objects say: traffic, scaling, security, secrets, provenance, jobs."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from nebula_compile.api import Compilation, compile_validation, validate_text

CONFIG = """\
platform: {name: acme, registry: registry.example.com/ml}
environments:
  dev:
    overrides:
      shop:
        deployments:
          api: {traffic: {a: 50, b: 50}}
  prod:
    production: true
    cloud: {region: eu-west-1, account_id: "123456789012"}
    dns: {zone: ml.example.com}
    kubernetes: {namespace_prefix: p-, notebooks: kubeflow}
connections:
  db: {type: postgresql, host: db.internal, database: shop, password: {secret: shop-db, key: password}}
roles:
  viewer: [projects:read, deployments:read]
  trainer: [models:train, runs:read]
  nothing-k8s: [predictions:predict]
bindings:
  - {subject: group:analysts, role: viewer}
  - {subject: serviceaccount:ci, role: trainer, projects: [shop]}
  - {subject: user:bob@example.com, role: nothing-k8s}
projects:
  shop:
    datasets:
      orders: {source: {connection: db, table: public.orders}, columns: {amount: float, late: boolean}}
    notebooks:
      lab: {resources: {cpu: 1, memory: 2Gi, gpu: 1}}
    models:
      lr: {algorithm: logistic_regression, dataset: orders, target: late}
      nn:
        task: classification
        algorithm: neural_network
        dataset: orders
        target: late
        resources: {cpu: 2, memory: 8Gi, gpu: 2}
        retraining: {schedule: "0 4 * * *"}
    deployments:
      api:
        variants:
          a: {model: lr, traffic: 80}
          b: {model: nn, version: challenger, traffic: 20}
        replicas: 3
        resources: {cpu: 250m, memory: 512Mi, limits: {memory: 1Gi}}
        monitoring:
          alerts:
            slow: {metric: latency_p99, threshold: 0.3, for: 90s, severity: critical}
          drift: {method: ks, threshold: 0.1, window: 30m}
      scaled:
        model: lr
        autoscaling: {min: 2, max: 6, target_cpu: 60}
      fn:
        target: aws_lambda
        model: lr
        environments: [prod]
"""


def compile_config(text: str = CONFIG, revision: str | None = None) -> Compilation:
    compilation = compile_validation(validate_text(textwrap.dedent(text)), revision=revision)
    assert compilation.ok, [f"{d.code} {d.message}" for d in compilation.diagnostics]
    return compilation


def objects(compilation: Compilation, env: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path, text in compilation.outputs[env].files.items():
        if path.startswith("kubernetes/") and not path.endswith("kustomization.yaml"):
            for obj in yaml.safe_load_all(text):
                out[(obj["kind"], obj["metadata"]["name"])] = obj
    return out


def test_http_route_carries_the_traffic_split_per_environment() -> None:
    compilation = compile_config()
    prod = objects(compilation, "prod")[("HTTPRoute", "api")]
    dev = objects(compilation, "dev")[("HTTPRoute", "api")]
    weights = {b["name"]: b["weight"] for b in prod["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"api-a": 80, "api-b": 20}
    assert {b["name"]: b["weight"] for b in dev["spec"]["rules"][0]["backendRefs"]} == {"api-a": 50, "api-b": 50}
    assert prod["spec"]["hostnames"] == ["api.shop.ml.example.com"]
    assert "hostnames" not in dev["spec"]
    assert prod["spec"]["parentRefs"][0]["name"] == "nebula-gateway"


def test_replicas_autoscaling_and_disruption_budgets() -> None:
    objs = objects(compile_config(), "dev")
    assert objs[("Deployment", "api-a")]["spec"]["replicas"] == 3
    assert ("PodDisruptionBudget", "api-a") in objs
    assert ("HorizontalPodAutoscaler", "api-a") not in objs
    scaled = objs[("Deployment", "scaled-main")]["spec"]
    assert "replicas" not in scaled, "the autoscaler owns the replica count"
    hpa = objs[("HorizontalPodAutoscaler", "scaled-main")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert objs[("PodDisruptionBudget", "scaled-main")]["spec"]["maxUnavailable"] == 1


def test_serving_pods_are_locked_down_and_pinned() -> None:
    objs = objects(compile_config(), "prod")
    pod = objs[("Deployment", "api-b")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    image = container["image"]
    assert image.startswith("registry.example.com/ml/shop-nn:sha-") and not image.endswith(":latest")
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "250m", "memory": "1Gi"},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NEBULA_MODEL"] == "nn" and env["NEBULA_MODEL_VERSION"] == "challenger"
    namespace = objs[("Namespace", "p-shop")]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policies_deny_by_default_and_allow_what_is_needed() -> None:
    objs = objects(compile_config(), "prod")
    assert objs[("NetworkPolicy", "default-deny")]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    ingress = objs[("NetworkPolicy", "allow-serving-ingress")]["spec"]["ingress"][0]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]
    data = objs[("NetworkPolicy", "allow-data-sources")]["spec"]["egress"][0]["ports"]
    assert data == [{"protocol": "TCP", "port": 5432}]


def test_secrets_are_external_references_only() -> None:
    compilation = compile_config()
    objs = objects(compilation, "prod")
    secret = objs[("ExternalSecret", "connection-db")]["spec"]
    assert secret["data"] == [{"secretKey": "password", "remoteRef": {"key": "shop-db", "property": "password"}}]
    job = next(o for (kind, _), o in objs.items() if kind == "Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NEBULA_CONNECTION_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "connection-db",
        "key": "password",
    }
    assert all(o["kind"] != "Secret" for o in objs.values())


def test_rbac_from_roles_and_bindings() -> None:
    objs = objects(compile_config(), "prod")
    viewer = objs[("Role", "nebula-viewer")]["rules"]
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in viewer)
    trainer = objs[("Role", "nebula-trainer")]["rules"]
    assert {
        "apiGroups": ["batch"],
        "resources": ["cronjobs", "jobs"],
        "verbs": ["get", "list", "watch", "create"],
    } in trainer
    assert {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]} in trainer
    binding = objs[("RoleBinding", "nebula-trainer")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ci", "namespace": "p-shop"}]
    assert ("Role", "nebula-nothing-k8s") not in objs, "a role with no Kubernetes meaning makes no Role"
    account = objs[("ServiceAccount", "nebula-workload")]
    assert (
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == "arn:aws:iam::123456789012:role/acme-prod-shop"
    )


def test_training_jobs_and_retraining_cronjobs() -> None:
    objs = objects(compile_config(), "prod")
    jobs = {name: o for (kind, name), o in objs.items() if kind == "Job"}
    assert sorted(name.rsplit("-", 1)[0] for name in jobs) == ["train-lr", "train-nn"]
    nn = next(o for name, o in jobs.items() if name.startswith("train-nn"))
    pod = nn["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["command"][:4] == ["python", "-m", "nebula_runtime.jobs", "pipeline"]
    cron = objs[("CronJob", "retrain-nn")]["spec"]
    assert cron["schedule"] == "0 4 * * *" and cron["concurrencyPolicy"] == "Forbid"


def test_job_names_change_with_the_job() -> None:
    first = objects(compile_config(), "prod")
    second = objects(
        compile_config(
            CONFIG.replace("resources: {cpu: 2, memory: 8Gi, gpu: 2}", "resources: {cpu: 4, memory: 8Gi, gpu: 2}")
        ),
        "prod",
    )
    names = lambda objs: sorted(n for (k, n) in objs if k == "Job")  # noqa: E731
    assert names(first) != names(second)
    assert [n for n in names(first) if n.startswith("train-lr")] == [
        n for n in names(second) if n.startswith("train-lr")
    ]


def test_notebooks_as_statefulset_or_kubeflow() -> None:
    compilation = compile_config()
    dev, prod = objects(compilation, "dev"), objects(compilation, "prod")
    assert ("StatefulSet", "notebook-lab") in dev and ("Service", "notebook-lab") in dev
    assert ("Notebook", "notebook-lab") in prod and ("PersistentVolumeClaim", "notebook-lab-home") in prod


def test_prometheus_rules_from_alerts_and_drift() -> None:
    compilation = compile_config()
    rules = yaml.safe_load(compilation.outputs["prod"].files["monitoring/prometheus/shop.rules.yaml"])
    (group,) = rules["groups"]
    slow, drift = group["rules"]
    assert slow["alert"] == "ShopApiSlow"
    assert slow["expr"].startswith("histogram_quantile(0.99,") and slow["expr"].endswith("> 0.3")
    assert slow["for"] == "90s" and slow["labels"]["severity"] == "critical"
    assert drift["expr"].endswith("> 0.1") and drift["for"] == "30m"
    assert objects(compilation, "prod")[("PrometheusRule", "api")]["spec"]["groups"] == rules["groups"]


def test_grafana_dashboard_per_deployment() -> None:
    files = compile_config().outputs["prod"].files
    board = json.loads(files["monitoring/grafana/shop-api.json"])
    titles = [p["title"] for p in board["panels"]]
    assert titles == [
        "Latency p50 / p95 / p99",
        "Throughput",
        "Errors",
        "Error rate",
        "CPU",
        "Memory",
        "Live accuracy",
        "Drift score",
    ]
    assert "monitoring/grafana/shop-fn.json" not in files


def test_provenance_annotations() -> None:
    objs = objects(compile_config(revision="0123abcd" * 5), "prod")
    notes = objs[("Deployment", "api-a")]["metadata"]["annotations"]
    assert notes["nebula/resource"] == "deployment.shop.api"
    assert notes["nebula/source"] == "nebula.yaml:39"
    assert notes["nebula/commit"] == "0123abcd" * 5
    unversioned = objects(compile_config(), "prod")[("Deployment", "api-a")]["metadata"]["annotations"]
    assert "nebula/commit" not in unversioned


def test_serverless_packaging_for_the_stacks() -> None:
    files = compile_config().outputs["prod"].files
    fn = json.loads(files["serverless/shop-fn.json"])
    assert fn["function_name"] == "acme-prod-shop-fn" and fn["memory_mb"] == 1024 and fn["timeout_seconds"] == 30
    assert fn["variants"]["main"]["weight"] == 100
    assert "serverless/shop-fn.json" not in compile_config().outputs["dev"].files


def test_build_context_per_model() -> None:
    files = compile_config().outputs["prod"].files
    dockerfile = files["images/shop-nn/Dockerfile"]
    assert "FROM python:3.11.10-slim-bookworm" in dockerfile
    assert "USER 10001:10001" in dockerfile and "HEALTHCHECK" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "nebula_runtime.serve"' in dockerfile
    assert "torch==2.13.0" in files["images/shop-nn/requirements.txt"]
    assert "torch" not in files["images/shop-lr/requirements.txt"]


def test_pipelines_call_the_job_entry_points() -> None:
    files = compile_config().outputs["prod"].files
    stages = yaml.safe_load(files["pipelines/shop/dvc.yaml"])["stages"]
    assert list(stages) == [
        "ingest-orders",
        "validate-orders",
        "train-lr",
        "evaluate-lr",
        "register-lr",
        "train-nn",
        "evaluate-nn",
        "register-nn",
    ]
    assert (
        stages["train-nn"]["cmd"]
        == "python -m nebula_runtime.jobs train --manifest ../../manifest.json --project shop --model nn"
    )
    assert stages["train-nn"]["deps"] == ["data/validated/orders"]
    params = yaml.safe_load(files["pipelines/shop/params.yaml"])
    assert params["models"]["nn"]["framework"] == "torch"
    jobs = list(yaml.safe_load_all(files["pipelines/shop/jobs.yaml"]))
    assert [j["metadata"]["name"] for j in jobs][:2] == ["01-ingest-orders", "02-validate-orders"]
    assert len(jobs) == len(stages)


def test_emit_problems_point_at_the_line() -> None:
    text = CONFIG.replace("        environments: [prod]\n", "")
    compilation = compile_validation(validate_text(text), revision=None)
    (problem,) = compilation.diagnostics
    assert problem.code == "NEB501"
    assert problem.span is not None and problem.span.line == 52
    assert not compilation.ok


def test_long_model_names_make_a_diagnostic_not_a_broken_job() -> None:
    name = "m" * 50
    text = CONFIG.replace("      lr: {algorithm", f"      {name}: {{algorithm").replace("model: lr", f"model: {name}")
    compilation = compile_validation(validate_text(text), revision=None)
    codes = sorted({d.code for d in compilation.diagnostics})
    assert codes == ["NEB503"]


def test_files_group_objects_the_way_reviewers_think() -> None:
    files = compile_config().outputs["prod"].files
    kube = sorted(p for p in files if p.startswith("kubernetes/shop/"))
    assert kube == [
        "kubernetes/shop/deployment-api.yaml",
        "kubernetes/shop/deployment-scaled.yaml",
        "kubernetes/shop/model-lr.yaml",
        "kubernetes/shop/model-nn.yaml",
        "kubernetes/shop/notebook-lab.yaml",
        "kubernetes/shop/project.yaml",
    ]
    kinds = [o["kind"] for o in yaml.safe_load_all(files["kubernetes/shop/deployment-api.yaml"])]
    assert kinds[:3] == ["ConfigMap", "Deployment", "Service"] and kinds[-2:] == ["ServiceMonitor", "PrometheusRule"]
