"""Runtime settings: the environment over `.env` over defaults, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from nebula_runtime.settings import GIB, Settings, SettingsError


def test_dotenv_then_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "NEBULA_API_KEY=from-dotenv\nDATABASE_URL=postgresql://u:p@db:5432/nebula\nNEBULA_MAX_UPLOAD=512M\n"
    )
    settings = Settings.from_env({"DATABASE_URL": "sqlite:///from-env.db"}, dotenv=str(dotenv))
    assert settings.api_key == "from-dotenv"
    assert settings.database_url == "sqlite:///from-env.db"  # the process environment wins
    assert settings.max_upload_bytes == 512 * 1024**2
    assert "from-dotenv" not in repr(settings)  # the key is kept out of reprs (and so out of logs)


def test_defaults_without_anything(tmp_path: Path) -> None:
    settings = Settings.from_env({}, dotenv=str(tmp_path / "absent.env"))
    assert settings.database_url == "sqlite:///.nebula/state.db"
    assert settings.max_upload_bytes == 10 * GIB
    assert settings.api_key is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"NEBULA_MAX_UPLOAD": "lots"}, "NEBULA_MAX_UPLOAD='lots' is not a size"),
        ({"NEBULA_MAX_UPLOAD": "0"}, "NEBULA_MAX_UPLOAD must be positive"),
        ({"NEBULA_GRAPHQL_MAX_DEPTH": "deep"}, "NEBULA_GRAPHQL_MAX_DEPTH='deep' is not a whole number"),
        ({"NEBULA_OIDC_ROLE_MAP": "admins"}, "'admins' is not CLAIM=ROLE"),
    ],
)
def test_bad_values_are_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings().with_values(values)


def test_role_map_and_flags() -> None:
    settings = Settings().with_values(
        {"NEBULA_OIDC_ROLE_MAP": "admins=admin, ds=scientist", "NEBULA_PUBLIC_DOCS": "false"}
    )
    assert dict(settings.oidc_role_map) == {"admins": "admin", "ds": "scientist"}
    assert settings.public_docs is False


def test_docs_can_be_closed(tmp_path: Path) -> None:
    from nebula_runtime import create_app

    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/state.db", api_key="k", public_docs=False, log_level="WARNING")
    )
    client = app.test_client()
    assert client.get("/docs").status_code == 401
    assert client.get("/v1/openapi.json").status_code == 401
    assert client.get("/v1/openapi.json", headers={"X-API-Key": "k"}).status_code == 200
    assert client.get("/healthz").status_code == 200
    app.extensions["nebula"].close()


def test_the_sqlite_state_store_runs_in_wal_mode(tmp_path: Path) -> None:
    """Readers (the API) and a writer (an apply, an upload) do not block each other."""
    from nebula_compile.state import Store

    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        store.close()
