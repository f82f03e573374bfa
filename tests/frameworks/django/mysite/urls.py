from django.urls import path
from pages import views

urlpatterns = [
    path("", views.index),
    path("items/<int:item_id>", views.item),
    path("form", views.form),
    path("json", views.echo_json),
    path("cookie", views.cookie),
    path("redirect", views.go_home),
    path("stream", views.stream),
]
