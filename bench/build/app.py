# A small AI-style service: a numpy "model" behind Flask (the benchmark only builds it).
import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
rng = np.random.default_rng(0)
WEIGHTS = rng.standard_normal((16, 4))


@app.post("/predict")
def predict():
    x = np.asarray(request.get_json()["features"], dtype=float).reshape(-1, 16)
    return jsonify(scores=(x @ WEIGHTS).tolist())


@app.get("/healthz")
def healthz():
    return "ok"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
