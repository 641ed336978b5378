// Attachments in the browser: uploading with progress, and showing what
// members uploaded. The API wants the bearer header, which an <img src>
// cannot send, so every file is fetched with it and shown through a blob:
// URL (cached per id and size; the bytes under an id never change, but
// an upload may be deleted: each page load revalidates once, and a
// deletion seen live drops the copy at once).
import { api, session, ApiError } from "./api.js";
import { h, modal, confirm, toast, errorText } from "./ui.js";
import { t } from "./i18n.js";

// MAX_SIZE is the server's limit (attachments.MaxSize), checked before
// sending 10 MB for nothing.
export const MAX_SIZE = 10 << 20;

const urls = new Map(); // "id" or "id/thumbnail" -> Promise<blob URL>
const types = new Map(); // the same keys -> the served media type
const gone = new Set(); // ids known to be deleted

// blobURL fetches an attachment (or its thumbnail) once and returns a
// blob: URL for it.
export function blobURL(id, thumb = false) {
  const key = thumb ? `${id}/thumbnail` : id;
  if (!urls.has(key)) {
    // no-cache: the browser's copy is used only after the server says it
    // still stands (304), so a file deleted since answers 410 instead.
    const p = fetch(`/api/attachments/${key}`, { headers: { Authorization: "Bearer " + session.token }, cache: "no-cache" })
      .then(async (res) => {
        if (!res.ok) throw new ApiError(res.status, "http_" + res.status, res.statusText);
        const blob = await res.blob();
        types.set(key, blob.type);
        return URL.createObjectURL(blob);
      });
    p.catch(() => urls.delete(key)); // a failure is retried next time
    urls.set(key, p);
  }
  return urls.get(key);
}

// upload sends file to room as multipart, calling progress(0..1) as it
// goes; it resolves to the server's answer ({id, name, kind, …}).
export function upload(room, file, progress = () => {}) {
  return new Promise((resolve, reject) => {
    if (file.size > MAX_SIZE) {
      reject(new ApiError(413, "too_large", t("file.tooLarge")));
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/rooms/${room}/attachments`);
    xhr.setRequestHeader("Authorization", "Bearer " + session.token);
    xhr.upload.onprogress = (e) => e.lengthComputable && progress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "network", "network error"));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status === 201) resolve(data);
      else {
        const e = (data && data.error) || {};
        reject(new ApiError(xhr.status, e.code || "http_" + xhr.status, e.message || xhr.statusText));
      }
    };
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// size is a byte count for people.
export function size(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

// view shows an attachment: an image as a thumbnail button that opens it
// full size, anything else as a download chip; a deleted one as a line
// saying so. Each carries data-attachment, so forget finds it.
export function view(a) {
  if (gone.has(a.id)) return deletedView(a);
  if (a.kind === "image") {
    const img = h("img", { alt: a.name, width: a.width, height: a.height, "data-testid": "attachment-thumb" });
    blobURL(a.id, true).then((u) => (img.src = u), (e) => (e.status === 410 ? forget(a.id) : img.replaceWith(h("span", { class: "error" }, t("file.unavailable")))));
    return h("button", { type: "button", class: "attachment image", "aria-label": t("file.open", a.name), "data-testid": "attachment-image", "data-attachment": a.id, onclick: () => openImage(a) }, img);
  }
  return h("button", { type: "button", class: "attachment chip", "data-testid": "attachment-file", "data-attachment": a.id, onclick: () => download(a) },
    h("span", { class: "chip-name" }, a.name), h("span", { class: "chip-size" }, size(a.size)));
}

function deletedView(a) {
  return h("span", { class: "attachment gone", "data-testid": "attachment-deleted", "data-deleted": a.id }, t("file.deleted"));
}

// isGone reports whether the attachment is known to be deleted.
export function isGone(id) {
  return gone.has(id);
}

// forget takes a deleted attachment out of the page: its cached bytes go,
// every view of it (messages, fee cards, an open image) says it was
// deleted, and the controls to delete it disappear.
export function forget(id) {
  gone.add(id);
  for (const key of [id, `${id}/thumbnail`]) {
    const p = urls.get(key);
    urls.delete(key);
    types.delete(key);
    if (p) p.then((u) => URL.revokeObjectURL(u), () => {});
  }
  const sel = CSS.escape(id);
  for (const el of document.querySelectorAll(`[data-attachment="${sel}"]`)) el.replaceWith(deletedView({ id }));
  for (const el of document.querySelectorAll(`[data-attachment-delete="${sel}"]`)) el.remove();
}

// removeAttachment deletes the reader's own upload (or, for an admin,
// anyone's) after asking; the room hears it live (attachment_deleted).
export async function removeAttachment(a) {
  if (!(await confirm(t("file.deleteLabel", a.name), t("file.deleteConfirm", a.name), t("file.delete"), { testid: "delete-attachment-dialog" }))) return;
  try {
    await api.deleteAttachment(a.id);
  } catch (e) {
    // 410: someone deleted it already, which is what was asked.
    if (e.status !== 410) {
      toast(errorText(e), "error");
      return;
    }
  }
  forget(a.id);
  toast(t("file.deletedToast", a.name), "ok");
}

// openImage shows an image full size in a dialog (Escape closes it).
export function openImage(a) {
  return modal(a.name, () => {
    const img = h("img", { class: "full", alt: a.name, "data-testid": "attachment-full", "data-attachment": a.id });
    blobURL(a.id).then((u) => (img.src = u), (e) => toast(errorText(e), "error"));
    return h("div", { class: "modal-body image-view" }, img,
      h("div", { class: "row end" }, h("button", { type: "button", class: "btn", onclick: () => download(a) }, t("file.download"))));
  }, { testid: "image-dialog" });
}

// openReceipt shows a spend's receipt, known only by its id: an image in
// the dialog, anything else saved.
export async function openReceipt(id) {
  try {
    await blobURL(id);
    if ((types.get(id) || "").startsWith("image/")) openImage({ id, name: t("file.receipt") });
    else download({ id, name: t("file.receipt") });
  } catch (e) {
    toast(errorText(e), "error");
  }
}

// download saves an attachment under its name.
export async function download(a) {
  try {
    const link = h("a", { href: await blobURL(a.id), download: a.name });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (e) {
    toast(errorText(e), "error");
  }
}
