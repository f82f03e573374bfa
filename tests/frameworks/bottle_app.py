"""A small Bottle app in Bottle's style: a `Bottle()` instance, route decorators, dict-as-JSON."""

from bottle import Bottle, redirect, request, response

app = Bottle()


@app.get("/")
def index():
    return "Hello from Bottle\n"


@app.get("/items/<item_id:int>")
def item(item_id):
    return {"id": item_id, "name": f"item {item_id}", "tags": ["a", "b"]}


@app.post("/form")
def form():
    fields = ", ".join(f"{k}={v}" for k, v in sorted(request.forms.decode().allitems()))
    return f"form: {fields}\n"


@app.post("/json")
def echo_json():
    return {"received": request.json, "framework": "bottle"}


@app.get("/cookie")
def cookie():
    response.set_cookie("flavor", "oatmeal", httponly=True, path="/")
    response.set_cookie("seen", "1", max_age=60)
    return f"visitor={request.get_cookie('visitor', '-')}\n"


@app.get("/redirect")
def go_home():
    redirect("/", 302)


@app.get("/stream")
def stream():
    response.content_type = "text/plain"
    path = request.path
    for i in range(5):
        yield f"chunk {i} of {path}\n"
