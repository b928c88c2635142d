// Page controls for a long table: a few hundred rows in the DOM at most, whatever the book's size.

/** Rows per table page. */
export const PAGE_ROWS = 100;

/**
 * Draw "Previous · Page k of n · Next" into ``nav`` (empty when everything fits on one page).
 * @param {Element} nav
 * @param {{page: number, pages: number, total: number, onPage: (page: number) => void}} args - page is 0-based.
 */
export function renderPager(nav, { page, pages, total, onPage }) {
  nav.replaceChildren();
  nav.dataset.page = String(page);
  nav.dataset.pages = String(pages);
  if (pages <= 1) return;
  const button = (text, target, label) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.disabled = target < 0 || target >= pages;
    b.addEventListener("click", () => onPage(target));
    return b;
  };
  const first = page * PAGE_ROWS + 1;
  const last = Math.min(total, (page + 1) * PAGE_ROWS);
  const where = document.createElement("span");
  where.className = "pager-where";
  where.textContent = `rows ${first}–${last} of ${total} (page ${page + 1} of ${pages})`;
  nav.append(button("← Previous", page - 1, "Previous page"), where, button("Next →", page + 1, "Next page"));
}
