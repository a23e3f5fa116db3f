{% extends "_base.sh" %}
{#- One process (gradcam): on a GPU when the stage's profile entry asks for one. -#}
{% block run %}
{{ command }} &
{% endblock %}
