"""The benchmark's baseline: a hello-world Flask route answering the same JSON shape as GET /v1/projects/{id}."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello/<project>")
def hello(project: str):  # type: ignore[no-untyped-def]
    return jsonify(id=project, name=project, description="Predict which customers will cancel")
