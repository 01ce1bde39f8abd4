from django.contrib.auth import views as auth_views
from django.urls import path

from campaigns.mobile import library, posters, task_links, tasks, views

app_name = "mobile"
urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="mobile/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="mobile:login"), name="logout"),
    path("staff/<int:pk>/", views.staff_detail, name="staff"),
    path("wecom/", views.wecom_login, name="wecom_login"),
    path("wecom/done/", views.wecom_done, name="wecom_done"),
    path("materials/", library.materials_list, name="materials"),
    path("materials/<int:pk>/", library.material_detail, name="material"),
    path("materials/<int:pk>/file/", library.material_file, name="material_file"),
    path("materials/<int:pk>/thumbnail/", library.material_thumbnail, name="material_thumbnail"),
    path("materials/<int:pk>/used/", library.material_used, name="material_used"),
    path("materials/<int:pk>/poster/", posters.material_poster, name="material_poster"),
    path("tasks/<int:pk>/", tasks.task_detail, name="task"),
    path("tasks/<int:pk>/confirm/", tasks.task_confirm, name="task_confirm"),
    path("tasks/<int:pk>/done/", tasks.task_done, name="task_done"),
    path("tasks/<int:pk>/tick/", tasks.task_tick, name="task_tick"),
    path("tasks/<int:pk>/photo/", tasks.task_photo, name="task_photo"),
    path("tasks/<int:pk>/followup/", tasks.task_followup, name="task_followup"),
    path("tasks/<int:pk>/nudge/", tasks.task_nudge, name="task_nudge"),
    path("tasks/<int:pk>/excuse/", tasks.task_excuse, name="task_excuse"),
    path("tasks/photos/<int:pk>/", tasks.task_evidence, name="task_evidence"),
    path("tasks/open/<int:task_id>/", task_links.task_open, name="task_open"),
]
