"""Import every model module so Base.metadata knows all tables (for migrations and checks)."""

from __future__ import annotations

from kavach.server.audit import models as audit_models
from kavach.server.auth import models as auth_models
from kavach.server.db.base import Base
from kavach.server.iam import models as iam_models
from kavach.server.oidc import models as oidc_models
from kavach.server.providers import models as provider_models
from kavach.server.rbac import models as rbac_models
from kavach.server.secrets import models as secret_models
from kavach.server.sync import models as sync_models
from kavach.server.webhooks import models as webhook_models
from kavach.server.workload import models as workload_models

MODEL_MODULES = (
    iam_models,
    auth_models,
    audit_models,
    rbac_models,
    secret_models,
    provider_models,
    sync_models,
    oidc_models,
    workload_models,
    webhook_models,
)
metadata = Base.metadata
