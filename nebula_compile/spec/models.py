"""The nebula.yaml language as typed, frozen values.

Defaults keep the common case short: a model needs an algorithm, a dataset and a
target; a deployment needs a model. Named objects are mappings keyed by name, so
a name is unique by construction and reads like the Kubernetes object it becomes.
The JSON Schema in `schemas/nebula.schema.json` is generated from these classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from nebula_compile.spec.types import (
    Algorithm,
    Base,
    Cpu,
    Duration,
    Email,
    GateExpr,
    Memory,
    Metric,
    Permission,
    SecretRef,
    Task,
)

Scalar = Union[str, int, float, bool]

# --- platform -------------------------------------------------------------------------------


class Platform(Base):
    """Where Nebula keeps its own state; the defaults run on one machine."""

    name: Annotated[str, Field(min_length=1, max_length=63)] = "nebula"
    state: str | SecretRef = Field(
        default="sqlite:///.nebula/state.db",
        description="State store URL: SQLite file by default, PostgreSQL for teams. "
        "A URL with a password must be given by reference, e.g. {env: DATABASE_URL}.",
    )
    artifacts: str = Field(default=".nebula/artifacts", description="Local folder or s3://bucket/prefix.")
    deploy_branch: str = Field(default="nebula/deploy", description="Branch that receives rendered manifests.")
    repository: str | None = Field(
        default=None,
        description="Git URL of this repository; when set, compile writes the Argo CD Application and the "
        "Flux GitRepository and Kustomization that sync the deploy branch.",
    )
    registry: str = Field(default="localhost:5000/nebula", description="Image registry for model images.")
    base_image: str = Field(
        default="python:3.11.10-slim-bookworm",
        description="Base of model images: a full version tag or a digest, never 'latest'.",
    )


# --- environments ------------------------------------------------------------------------------


class KubernetesSettings(Base):
    context: str | None = Field(default=None, description="kubeconfig context; the current one when unset.")
    cluster: str | None = None
    namespace_prefix: str | None = Field(
        default=None, description="Prefix of every namespace; defaults to '<environment>-'."
    )
    gateway: str = Field(default="nebula-gateway", description="Gateway API Gateway that routes to models.")
    gateway_namespace: str = Field(default="nebula-system", description="Namespace of that Gateway.")
    monitoring_namespace: str = Field(default="monitoring", description="Namespace of Prometheus, allowed to scrape.")
    secret_store: str = Field(default="nebula", description="External Secrets ClusterSecretStore that holds secrets.")
    notebooks: Literal["statefulset", "kubeflow"] = Field(
        default="statefulset", description="Run notebooks as a plain StatefulSet or as Kubeflow Notebooks."
    )
    storage_class: str | None = None


class Cloud(Base):
    provider: Literal["aws"] = "aws"
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")]
    account_id: Annotated[str, Field(pattern=r"^[0-9]{12}$")] | None = None


class Tls(Base):
    enabled: bool = True
    issuer: str = Field(default="letsencrypt", description="cert-manager issuer (or ACM on AWS).")


class Dns(Base):
    zone: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")]
    tls: Tls = Tls()


class Resources(Base):
    cpu: Cpu = "500m"
    memory: Memory = "1Gi"
    gpu: Annotated[int, Field(ge=0, le=16)] = 0
    limits: ResourceLimits | None = Field(default=None, description="Defaults to the requests.")


class ResourceLimits(Base):
    cpu: Cpu | None = None
    memory: Memory | None = None


class AutoscalingOverride(Base):
    min: Annotated[int, Field(ge=1)] | None = None
    max: Annotated[int, Field(ge=1)] | None = None
    target_cpu: Annotated[int, Field(ge=1, le=100)] | None = None


class DeploymentOverride(Base):
    replicas: Annotated[int, Field(ge=0)] | None = None
    autoscaling: AutoscalingOverride | None = None
    resources: Resources | None = None
    traffic: dict[str, Annotated[int, Field(ge=0, le=100)]] | None = Field(
        default=None, description="Traffic percent per variant name; must still sum to 100."
    )


class RetrainingOverride(Base):
    schedule: str | None = None
    on_drift: bool | None = None


class ModelOverride(Base):
    resources: Resources | None = None
    retraining: RetrainingOverride | None = None


class NotebookOverride(Base):
    resources: Resources | None = None
    enabled: bool | None = None


class ProjectOverride(Base):
    deployments: dict[str, DeploymentOverride] = {}
    models: dict[str, ModelOverride] = {}
    notebooks: dict[str, NotebookOverride] = {}


PolicyLevel = Literal["advisory", "mandatory", "disabled"]


class PolicySetting(Base):
    level: PolicyLevel | None = None
    parameters: dict[str, Scalar | list[Scalar]] = Field(default={}, description="Values the policy reads.")


def _policy_form(value: Any) -> str:
    return "<level>" if isinstance(value, str) else "<setting>"


PolicyEntry = Annotated[
    Union[Annotated[PolicyLevel, Tag("<level>")], Annotated[PolicySetting, Tag("<setting>")]],
    Discriminator(_policy_form),
]
"""`name: mandatory`, or `name: {level: advisory, parameters: {...}}`."""


class Environment(Base):
    description: str | None = None
    production: bool = Field(default=False, description="Production environments get the strictest policies.")
    kubernetes: KubernetesSettings = KubernetesSettings()
    cloud: Cloud | None = None
    dns: Dns | None = None
    gpu_nodes: bool = Field(default=False, description="Whether this environment has GPU nodes.")
    overrides: dict[str, ProjectOverride] = Field(default={}, description="Per-project settings for this environment.")
    policies: dict[str, PolicyEntry] = Field(
        default={}, description="Policy levels and parameters in this environment."
    )


# --- connections ------------------------------------------------------------------------------


class _Sql(Base):
    host: str
    database: str
    user: str | None = None
    password: SecretRef | None = None
    options: dict[str, Scalar | SecretRef] = {}


class PostgresConnection(_Sql):
    type: Literal["postgresql"]
    port: Annotated[int, Field(ge=1, le=65535)] = 5432
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"


class MysqlConnection(_Sql):
    type: Literal["mysql"]
    port: Annotated[int, Field(ge=1, le=65535)] = 3306


class MssqlConnection(_Sql):
    type: Literal["mssql"]
    port: Annotated[int, Field(ge=1, le=65535)] = 1433


class OracleConnection(_Sql):
    type: Literal["oracle"]
    port: Annotated[int, Field(ge=1, le=65535)] = 1521
    database: str = Field(description="Service name.")


class MongoConnection(Base):
    type: Literal["mongodb"]
    hosts: Annotated[list[str], Field(min_length=1)]
    database: str
    user: str | None = None
    password: SecretRef | None = None
    replica_set: str | None = None
    tls: bool = True
    options: dict[str, Scalar | SecretRef] = {}


class CassandraConnection(Base):
    type: Literal["cassandra"]
    hosts: Annotated[list[str], Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 9042
    keyspace: str
    user: str | None = None
    password: SecretRef | None = None
    options: dict[str, Scalar | SecretRef] = {}


class S3Connection(Base):
    type: Literal["s3"]
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="For S3-compatible stores such as MinIO.")
    credentials: SecretRef | None = Field(default=None, description="Unset: the workload's IAM role (IRSA).")


class AzureBlobConnection(Base):
    type: Literal["azure_blob"]
    account: str
    container: str
    prefix: str = ""
    credentials: SecretRef | None = None


class GcsConnection(Base):
    type: Literal["gcs"]
    bucket: str
    prefix: str = ""
    project: str | None = None
    credentials: SecretRef | None = None


class LocalConnection(Base):
    type: Literal["local"]
    path: str = Field(description="Folder, relative to the repository root.")


Connection = Annotated[
    Union[
        PostgresConnection,
        MysqlConnection,
        MssqlConnection,
        OracleConnection,
        MongoConnection,
        CassandraConnection,
        S3Connection,
        AzureBlobConnection,
        GcsConnection,
        LocalConnection,
    ],
    Field(discriminator="type"),
]

SQL_TYPES = frozenset({"postgresql", "mysql", "mssql", "oracle"})
FILE_TYPES = frozenset({"s3", "azure_blob", "gcs", "local"})

# --- datasets -------------------------------------------------------------------------------------

ColumnType = Literal["string", "integer", "float", "boolean", "category", "datetime", "image"]
BuiltinDataset = Literal["sklearn.digits", "sklearn.iris", "sklearn.breast_cancer", "sklearn.wine", "sklearn.diabetes"]


class Column(Base):
    type: ColumnType
    description: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[Scalar] | None = Field(default=None, description="Allowed categories.")
    unique: bool = False
    missing: Annotated[float, Field(ge=0, le=1)] = Field(default=0.0, description="Allowed fraction of missing values.")
    pii: bool = False


def _column_form(value: Any) -> str:
    return "<type>" if isinstance(value, str) else "<column>"


def _expand_column(value: Any) -> Column:
    return Column(type=cast(ColumnType, value)) if isinstance(value, str) else cast(Column, value)


if TYPE_CHECKING:
    ColumnSpec = Column
else:  # `tenure: integer` is short for `tenure: {type: integer}`; both validate to a Column
    ColumnSpec = Annotated[
        Union[Annotated[ColumnType, Tag("<type>")], Annotated[Column, Tag("<column>")]],
        Discriminator(_column_form),
        AfterValidator(_expand_column),
    ]


class Source(Base):
    """Where a dataset's rows come from; exactly one of the location keys."""

    connection: str | None = None
    table: str | None = None
    query: str | None = None
    path: str | None = Field(default=None, description="File path or glob, in a connection or the repository.")
    collection: str | None = Field(default=None, description="MongoDB collection.")
    builtin: BuiltinDataset | None = Field(default=None, description="A dataset that ships with a library.")
    upload: bool = Field(default=False, description="Rows arrive through POST /v1/projects/{id}/data.")

    def location_keys(self) -> list[str]:
        return [k for k in ("table", "query", "path", "collection", "builtin") if getattr(self, k) is not None] + (
            ["upload"] if self.upload else []
        )


class Encryption(Base):
    at_rest: bool = True
    kms_key: str | None = Field(default=None, description="KMS key id or alias (not a secret).")


class Dataset(Base):
    description: str | None = None
    source: Source = Source(upload=True)
    format: Literal["csv", "json", "parquet"] | None = None
    columns: dict[str, ColumnSpec] = Field(default={}, description="Declared column schema; checked on every version.")
    classification: Literal["public", "internal", "confidential", "pii", "restricted"] = "internal"
    encryption: Encryption = Encryption()
    version: str | None = Field(default=None, description="Pinned version (tag or content hash); latest when unset.")


# --- preprocessing ----------------------------------------------------------------------------


class MissingValues(Base):
    strategy: Literal["drop", "mean", "median", "most_frequent", "constant"] = "median"
    fill_value: Scalar | None = None
    columns: list[str] | None = None


class Cleaning(Base):
    drop_duplicates: bool = False
    missing: MissingValues | None = None
    drop_columns: list[str] = []


class Transform(Base):
    scale: list[str] = Field(default=[], description="Standardize to zero mean, unit variance.")
    normalize: list[str] = Field(default=[], description="Rescale to [0, 1].")
    log: list[str] = []
    one_hot: list[str] = []
    ordinal: dict[str, list[Scalar]] = Field(default={}, description="Column -> categories in order.")


class Preprocessing(Base):
    input: str = Field(description="A dataset, or another preprocessing step of the project.")
    clean: Cleaning = Cleaning()
    features: dict[str, str] = Field(default={}, description="New column -> arithmetic expression over columns.")
    transform: Transform = Transform()


# --- notebooks ---------------------------------------------------------------------------------


class Notebook(Base):
    kind: Literal["jupyter", "vscode"] = "jupyter"
    image: str | None = None
    resources: Resources = Resources()
    storage: Memory = "10Gi"
    datasets: list[str] = []
    idle_timeout: Duration | None = None
    environments: list[str] | None = Field(default=None, description="Environments to run in; all when unset.")


# --- models --------------------------------------------------------------------------------------


class Regularization(Base):
    kind: Literal["l1", "l2", "elasticnet", "none"] = "l2"
    strength: Annotated[float, Field(ge=0)] = 1.0
    l1_ratio: Annotated[float, Field(ge=0, le=1)] | None = None


class Params(Base):
    """Training parameters. The common ones are typed; others pass to the algorithm as named."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar | list[Scalar] | None]

    learning_rate: Annotated[float, Field(gt=0)] | None = None
    batch_size: Annotated[int, Field(ge=1)] | None = None
    epochs: Annotated[int, Field(ge=1)] | None = None
    regularization: Regularization | None = None

    def given(self) -> dict[str, Any]:
        """Every parameter the user wrote, typed or not."""
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        out.update(self.model_extra or {})
        return out


class Range(Base):
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None


def _dimension_form(value: Any) -> str:
    return "<choices>" if isinstance(value, list) else "<range>"


SearchDimension = Annotated[
    Union[Annotated[list[Scalar], Tag("<choices>")], Annotated[Range, Tag("<range>")]],
    Discriminator(_dimension_form),
]


class Tuning(Base):
    strategy: Literal["grid", "random", "bayesian"] = "bayesian"
    trials: Annotated[int, Field(ge=1, le=10000)] = 20
    metric: Metric | None = Field(default=None, description="Defaults to the model's first metric.")
    direction: Literal["maximize", "minimize"] | None = None
    cv: Annotated[int, Field(ge=2, le=20)] = 5
    timeout: Duration | None = None
    space: Annotated[dict[str, SearchDimension], Field(min_length=1)]


class Retraining(Base):
    schedule: str | None = Field(default=None, description="Cron expression, e.g. '0 3 * * 1'.")
    on_drift: bool = Field(default=False, description="Retrain when a deployment serving the model drifts.")
    min_interval: Duration | None = None


class Split(Base):
    test: Annotated[float, Field(gt=0, lt=1)] = 0.2
    validation: Annotated[float, Field(ge=0, lt=1)] = 0.0
    stratify: bool = True

    @model_validator(mode="after")
    def _leaves_training_data(self) -> Split:
        if self.test + self.validation >= 1:
            raise PydanticCustomError(
                "split",
                "test {test} + validation {validation} leave no rows to train on",
                {"test": self.test, "validation": self.validation},
            )
        return self


class Model(Base):
    description: str | None = None
    task: Task | None = Field(default=None, description="Inferred from the algorithm when it has one task.")
    algorithm: Algorithm
    framework: Literal["sklearn", "torch"] | None = Field(
        default=None, description="torch for neural_network, sklearn otherwise."
    )
    dataset: str = Field(description="A dataset or a preprocessing step of the project.")
    target: str | None = None
    features: list[str] | None = None
    params: Params = Params()
    tuning: Tuning | None = None
    metrics: Annotated[list[Metric], Field(min_length=1)] | None = Field(default=None, description="Defaults by task.")
    gates: list[GateExpr] = []
    split: Split = Split()
    seed: int = 42
    resources: Resources = Resources()
    retraining: Retraining | None = None


# --- deployments ----------------------------------------------------------------------------------

ServingMetric = Literal[
    "latency",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "throughput",
    "errors",
    "error_rate",
    "cpu",
    "memory",
    "accuracy",
    "drift",
]


class Variant(Base):
    model: str
    version: int | str = Field(default="champion", description="A version number or an alias.")
    traffic: Annotated[int, Field(ge=0, le=100)] | None = Field(default=None, description="Percent of requests.")


class Autoscaling(Base):
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)]
    target_cpu: Annotated[int, Field(ge=1, le=100)] = 70


class Alert(Base):
    metric: ServingMetric
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float
    for_: Duration = Field(default="5m", alias="for")
    severity: Literal["info", "warning", "critical"] = "warning"
    description: str | None = None


class Drift(Base):
    method: Literal["psi", "ks", "wasserstein", "chi2"] = "psi"
    threshold: Annotated[float, Field(gt=0)] = 0.2
    window: Duration = "1h"
    features: list[str] | None = None
    min_samples: Annotated[int, Field(ge=1)] = 100


class Logs(Base):
    sink: Literal["stdout", "s3", "loki", "elasticsearch", "cloudwatch"] = "stdout"
    url: str | None = None
    sample: Annotated[float, Field(ge=0, le=1)] = 1.0


class Monitoring(Base):
    metrics: list[ServingMetric] = ["latency", "throughput", "errors"]
    alerts: dict[str, Alert] = {}
    drift: Drift | None = None
    logs: Logs = Logs()


class Serverless(Base):
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 1024
    timeout: Duration = "30s"


class Deployment(Base):
    description: str | None = None
    target: Literal["kubernetes", "aws_lambda", "azure_functions", "gcp_functions"] = "kubernetes"
    model: str | None = Field(default=None, description="Short form: serve one model with all traffic.")
    version: int | str | None = Field(default=None, description="With `model`: a version number or alias.")
    variants: dict[str, Variant] = Field(default={}, description="A/B variants with traffic percent.")
    replicas: Annotated[int, Field(ge=0)] = 1
    autoscaling: Autoscaling | None = None
    resources: Resources = Resources()
    monitoring: Monitoring = Monitoring()
    serverless: Serverless | None = None
    environments: list[str] | None = Field(default=None, description="Environments to deploy to; all when unset.")

    def effective_variants(self) -> dict[str, Variant]:
        if self.variants:
            return self.variants
        if self.model is not None:
            return {"main": Variant(model=self.model, version=self.version or "champion", traffic=100)}
        return {}


# --- projects ----------------------------------------------------------------------------------------


class Project(Base):
    description: str = ""
    owners: list[Email] = []
    labels: dict[str, str] = {}
    datasets: dict[str, Dataset] = {}
    preprocessing: dict[str, Preprocessing] = {}
    notebooks: dict[str, Notebook] = {}
    models: dict[str, Model] = {}
    deployments: dict[str, Deployment] = {}


# --- access ---------------------------------------------------------------------------------------------


class Role(Base):
    description: str | None = None
    permissions: list[Permission]


def _role_form(value: Any) -> str:
    return "<permissions>" if isinstance(value, list) else "<role>"


def _expand_role(value: Any) -> Role:
    return Role(permissions=value) if isinstance(value, list) else cast(Role, value)


if TYPE_CHECKING:
    RoleSpec = Role
else:  # a list of permissions is short for `{permissions: [...]}`
    RoleSpec = Annotated[
        Union[Annotated[list[Permission], Tag("<permissions>")], Annotated[Role, Tag("<role>")]],
        Discriminator(_role_form),
        AfterValidator(_expand_role),
    ]


class Binding(Base):
    subject: Annotated[str, Field(pattern=r"^(user|group|serviceaccount):\S+$")] = Field(
        description="user:EMAIL, group:NAME or serviceaccount:NAME."
    )
    role: str
    projects: list[str] | None = Field(default=None, description="Projects the role applies to; all when unset.")


class ApiKey(Base):
    role: str
    key: SecretRef
    projects: list[str] | None = None


class ApiKeys(Base):
    enabled: bool = True
    header: str = "X-API-Key"
    keys: dict[str, ApiKey] = {}


class Oidc(Base):
    issuer: Annotated[str, Field(pattern=r"^https://")]
    client_id: str
    client_secret: SecretRef | None = None
    audience: str | None = None
    jwks_url: str | None = None
    roles_claim: str = "groups"
    role_map: dict[str, str] = Field(default={}, description="Claim value -> role.")


class Ldap(Base):
    url: Annotated[str, Field(pattern=r"^ldaps?://")]
    bind_dn: str
    bind_password: SecretRef
    user_base: str
    user_filter: str = "(uid={username})"
    group_base: str | None = None
    start_tls: bool = False
    role_map: dict[str, str] = Field(default={}, description="LDAP group -> role.")


class Saml(Base):
    idp_metadata_url: Annotated[str, Field(pattern=r"^https://")]
    entity_id: str
    certificate: SecretRef | None = None
    private_key: SecretRef | None = None
    role_attribute: str = "groups"
    role_map: dict[str, str] = Field(default={}, description="SAML attribute value -> role.")


class Auth(Base):
    api_keys: ApiKeys = ApiKeys()
    oidc: Oidc | None = None
    ldap: Ldap | None = None
    saml: Saml | None = None


# --- the whole file ----------------------------------------------------------------------------------------


def _exact_version(value: Any) -> Any:
    if isinstance(value, float):  # strict Literal[1] would take 1.0
        raise PydanticCustomError("literal_error", "Input should be 1", {"expected": "1"})
    return value


class Spec(Base):
    """A whole nebula.yaml, after include: has been merged."""

    model_config = ConfigDict(title="nebula.yaml")

    version: Annotated[Literal[1], BeforeValidator(_exact_version)] = 1
    include: str | list[str] | None = Field(default=None, description="More files to merge; paths or globs.")
    platform: Platform = Platform()
    environments: dict[str, Environment] = Field(default_factory=lambda: {"dev": Environment()})
    connections: dict[str, Connection] = {}
    projects: dict[str, Project] = {}
    roles: dict[str, RoleSpec] = {}
    bindings: list[Binding] = []
    auth: Auth = Auth()
    policies: dict[str, PolicyEntry] = Field(
        default={}, description="Policy levels and parameters everywhere; environments may change them again."
    )


Resources.model_rebuild()
