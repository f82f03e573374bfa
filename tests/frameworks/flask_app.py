"""A small Flask app in Flask's own style: decorators, `request`, `jsonify`, `stream_with_context`."""

from flask import Flask, jsonify, make_response, redirect, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Flask\n"


@app.get("/items/<int:item_id>")
def item(item_id: int):
    return jsonify(id=item_id, name=f"item {item_id}", tags=["a", "b"])


@app.post("/form")
def form():
    fields = ", ".join(f"{k}={v}" for k, v in sorted(request.form.items(multi=True)))
    return f"form: {fields}\n"


@app.post("/json")
def echo_json():
    return jsonify(received=request.get_json(), framework="flask")


@app.get("/cookie")
def cookie():
    resp = make_response(f"visitor={request.cookies.get('visitor', '-')}\n")
    resp.set_cookie("flavor", "oatmeal", httponly=True, path="/")
    resp.set_cookie("seen", "1", max_age=60)
    return resp


@app.get("/redirect")
def go_home():
    return redirect("/", code=302)


@app.get("/stream")
def stream():
    @stream_with_context
    def generate():
        for i in range(5):
            yield f"chunk {i} of {request.path}\n"

    return app.response_class(generate(), mimetype="text/plain")
