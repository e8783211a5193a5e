"""Attachments as downloads, for the team's pages and the portal alike."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404

from communication.models import Attachment


def attachment_response(attachment: Attachment) -> FileResponse:
    """The file as a download under its original name, never shown inline."""
    assert attachment.file.name is not None  # a NOT NULL column
    try:
        handle = default_storage.open(attachment.file.name, "rb")
    except FileNotFoundError:
        raise Http404("The file is gone") from None
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.filename, content_type=attachment.content_type
    )
    response["Cache-Control"] = "private, no-store"
    return response
