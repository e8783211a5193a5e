from django.db import migrations


def link_terms(apps, schema_editor):
    """Every accepted renewal's next retainer points back at the term it renews."""
    Renewal = apps.get_model("renewals", "Renewal")
    Retainer = apps.get_model("clients", "Retainer")
    for retainer_id, next_id in Renewal.objects.filter(next_retainer__isnull=False).values_list(
        "retainer_id", "next_retainer_id"
    ):
        Retainer.objects.filter(pk=next_id, previous_term=None).update(previous_term_id=retainer_id)


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0009_retainer_previous_term"),
        ("renewals", "0003_terms_constraints"),
    ]

    operations = [migrations.RunPython(link_terms, migrations.RunPython.noop)]
