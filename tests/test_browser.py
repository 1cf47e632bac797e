"""The tutorial in a real browser: headless Chromium, driven by selenium, against JupyterLab and the HTML gallery.

The explorer test starts JupyterLab on a free local port (its own token and temporary Jupyter
config, data and runtime folders, so nothing in the home folder changes), opens notebook 08,
runs it from the Run menu, then types words and moves the step and θ sliders. After each
change it waits until the page shows what :class:`carlib.CaR`, run in this test's own process
with the same settings, says it should: the kept words in the status line and, pixel for
pixel, the figure for that step. The gallery test builds ``index.html`` as ``make demo`` does
(on two notebooks, to stay quick) and checks that every linked page loads with its figures
decoded and its LaTeX typeset by the gallery's own copy of MathJax (the browser has no internet).

Without Chromium these tests are skipped with a banner in the summary, and fail under CI
(see the ``chromium`` fixture in ``conftest.py``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from carlib import tutorial
from carlib.apps.gallery import build_gallery
from carlib.tutorial.explorer import CSS_CLASSES, explorer_figure
from carlib.tutorial.figures import figure_png

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPLORER_NOTEBOOK = "08_explorer.ipynb"
GALLERY_NOTEBOOKS = ("00_quickstart", "08_explorer")

MATHJAX_SECONDS = 60
LAB_START_SECONDS = 120
KERNEL_SECONDS = 240  # Run All: starting the kernel, importing torch and the first CaR run, on a busy 2-core machine
CHANGE_SECONDS = 120  # one widget change: a CaR run per queued change, and the figure back to the page


def _selector(attribute: str) -> str:
    return "." + CSS_CLASSES[attribute]


# ---------------------------------------------------------------- JupyterLab and the browser

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _quiet_lab_settings(config_dir: Path) -> None:
    """No news or update notifications: offline they only add a pop-up over the notebook."""
    folder = config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    folder.mkdir(parents=True)
    (folder / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                        "checkForUpdates": False}))


def _explorer_copy(root: Path) -> None:
    """Notebook 08 in the server's folder, on the ShapesWorld CLIP whatever weights are on disk.

    A copy, so that JupyterLab's autosave never writes the run's outputs into the committed notebook.
    """
    notebook = nbformat.read(NOTEBOOKS / EXPLORER_NOTEBOOK, as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    assert re.search(r'^model = "auto"', parameters.source, flags=re.M), parameters.source
    parameters.source = re.sub(r'^model = "auto"', 'model = "shapes"', parameters.source, flags=re.M)
    nbformat.write(notebook, root / EXPLORER_NOTEBOOK)


@pytest.fixture(scope="module")
def jupyterlab(chromium, tmp_path_factory):
    """A JupyterLab server on a free port serving a copy of notebook 08; yields its base URL and token."""
    home = tmp_path_factory.mktemp("jupyter")
    root = home / "notebooks"
    root.mkdir()
    _explorer_copy(root)
    _quiet_lab_settings(home / "config")
    environment = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
                   "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
                   "JUPYTER_PREFER_ENV_PATH": "1"}
    port, token = _free_port(), "carlib-browser-test"
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.open_browser=False", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
         "--LabApp.extension_manager=readonly"],
        env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LAB_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{(home / 'lab.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in {LAB_START_SECONDS} s:\n{(home / 'lab.log').read_text()}")
            time.sleep(0.5)
        yield base, token
    finally:
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    """Headless Chromium through the given chromedriver; selenium-manager is never asked to download one."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tmp_path_factory.mktemp("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", f"--user-data-dir={profile}", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


# ---------------------------------------------------------------- what the page shows

def _png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(png)).convert("RGBA"))


def _page_state(driver) -> tuple[str, np.ndarray | None, str, str]:
    """(status line, figure pixels, step handle's value, θ handle's value) as the page shows them now."""
    from selenium.webdriver.common.by import By

    status = driver.find_element(By.CSS_SELECTOR, _selector("status")).text
    images = driver.find_elements(By.CSS_SELECTOR, f"{_selector('output')} img")
    pixels = None
    if images:
        source = images[0].get_attribute("src") or ""
        if source.startswith("data:image/png;base64,"):
            pixels = _png_pixels(base64.b64decode(source.split(",", 1)[1]))
    step = driver.find_element(By.CSS_SELECTOR, f"{_selector('step')} .noUi-handle").get_attribute("aria-valuenow")
    theta = driver.find_element(By.CSS_SELECTOR, f"{_selector('theta')} .widget-readout").text  # aria rounds to 0.1
    return status, pixels, step, theta


def _status_of(result) -> tuple[int, list[str]]:
    return result.num_steps, list(result.kept_queries)


def _parse_status(text: str) -> tuple[int, list[str]] | None:
    found = re.fullmatch(r"(\d+) steps?; kept: (.*)", text.strip())
    if not found:
        return None
    kept = found.group(2)
    return int(found.group(1)), [] if kept == "nothing" else [word.strip() for word in kept.split(",")]


def _wait_for(driver, picture, result, step: int, theta: float, what: str, seconds: float = CHANGE_SECONDS) -> None:
    """Wait until the page shows ``result`` at ``step`` (status, figure pixels, slider values); fail with what it shows."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    expected_figure = _png_pixels(figure_png(explorer_figure(picture, result, step, theta)))
    expected_status = _status_of(result)
    seen: dict[str, object] = {}

    def shows_it(_driver) -> bool:
        try:
            status, pixels, shown_step, shown_theta = _page_state(driver)
        except (StaleElementReferenceException, WebDriverException):
            return False
        same_figure = pixels is not None and pixels.shape == expected_figure.shape and np.array_equal(
            pixels, expected_figure)
        seen.update(status=status, step=shown_step, theta=shown_theta, same_figure=same_figure,
                    figure="none" if pixels is None else f"{pixels.shape[1]} x {pixels.shape[0]} px")
        return (_parse_status(status) == expected_status and shown_step is not None
                and int(float(shown_step)) == step and shown_theta == f"{theta:.2f}" and same_figure)

    try:
        WebDriverWait(driver, seconds, poll_frequency=0.5).until(shows_it)
    except Exception as timeout:
        raise AssertionError(
            f"after {what}, the page did not show CaR's result within {seconds} s: expected {expected_status[0]} "
            f"step(s), kept {expected_status[1]}, step {step}, θ {theta:.2f} and a "
            f"{expected_figure.shape[1]} x {expected_figure.shape[0]} px figure; the page shows {seen}") from timeout


@pytest.fixture(scope="module")
def session():
    return tutorial.setup("shapes", verbose=False)


def _until(driver, condition, what: str, seconds: float = KERNEL_SECONDS):
    """WebDriverWait(...).until(condition), failing with what JupyterLab's status bar said and a screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.5).until(condition)
    except Exception as timeout:
        bars = driver.find_elements(By.ID, "jp-main-statusbar")
        screenshot = Path(os.environ.get("TMPDIR", "/tmp")) / "carlib-browser-failure.png"
        driver.save_screenshot(str(screenshot))
        raise AssertionError(f"JupyterLab: no {what} within {seconds} s; status bar: "
                             f"{bars[0].text if bars else '(none)'!r}; screenshot {screenshot}") from timeout


def _kernel_state(base: str, token: str) -> str | None:
    """The execution state of the kernel the server runs for notebook 08 (None before it has one)."""
    try:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as answer:
            sessions = json.load(answer)
    except OSError:
        return None
    for session in sessions:
        if session.get("path", "").endswith(EXPLORER_NOTEBOOK) and session.get("kernel"):
            return session["kernel"].get("execution_state")
    return None


def _open_and_run_all(driver, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready

    driver.get(f"{base}/lab/tree/{EXPLORER_NOTEBOOK}?token={token}&reset")
    _until(driver, lambda _: _kernel_state(base, token) == "idle", "idle kernel for the notebook (server's sessions)")
    _until(driver, ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".jp-Toolbar-kernelName"), "Python"),
           "kernel name in the notebook's toolbar")
    _until(driver, ready.element_to_be_clickable(
        (By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][normalize-space() = 'Run']")), "Run menu").click()
    _until(driver, ready.element_to_be_clickable(
        (By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']")), "Run All Cells item").click()
    _until(driver, ready.presence_of_element_located((By.CSS_SELECTOR, _selector("widget"))), "explorer widget")


def _focus(driver, element):
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    return element


@pytest.mark.browser
def test_explorer_in_jupyterlab_shows_what_car_computes(jupyterlab, browser, session):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.perf_counter()
    picture = session.load(session.images[0])  # the notebook's default picture
    theta = session.settings.confidence_threshold
    _open_and_run_all(browser, *jupyterlab)

    # 1. As executed: the default words at the preset's θ, drawn at the last step.
    default = session.car().segment(picture, session.queries_for(None))
    _wait_for(browser, picture, default, default.num_steps, theta, "Run All", seconds=KERNEL_SECONDS)

    # 2. New words, typed into the text box (sent on Enter).
    words = ["orange", "lemon", "kite", "dice"]
    typed = session.car().segment(picture, words)
    assert _status_of(typed) != _status_of(default), "pick words whose result differs from the defaults'"
    box = _focus(browser, browser.find_element(By.CSS_SELECTOR, f"{_selector('queries')} input"))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(", ".join(words), Keys.ENTER)
    _wait_for(browser, picture, typed, typed.num_steps, theta, "typing new words")

    # 3. The step slider back to step 1: the same result, the first step's proposals.
    assert typed.num_steps > 1 and len(typed.steps[0].alive) != len(typed.steps[-1].alive)
    step_handle = _focus(browser, browser.find_element(By.CSS_SELECTOR, f"{_selector('step')} .noUi-handle"))
    assert step_handle.get_attribute("aria-valuemax").startswith(str(typed.num_steps))
    step_handle.send_keys(Keys.HOME)
    _wait_for(browser, picture, typed, 1, theta, "moving the step slider to 1")

    # 4. θ three slider steps up (arrow keys on its handle): CaR runs again and drops more words.
    theta_step = 0.05
    raised = round(theta + 3 * theta_step, 2)
    stricter = session.car(confidence_threshold=raised).segment(picture, words)
    assert set(stricter.kept_queries) < set(typed.kept_queries), "pick a θ at which CaR drops another word"
    theta_handle = _focus(browser, browser.find_element(By.CSS_SELECTOR, f"{_selector('theta')} .noUi-handle"))
    for _ in range(3):
        theta_handle.send_keys(Keys.ARROW_RIGHT)
    _wait_for(browser, picture, stricter, stricter.num_steps, raised, f"moving θ to {raised:.2f}")

    errors = browser.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.error']")
    assert not errors, f"a cell of notebook 08 failed in JupyterLab: {errors[0].text[:2000]}"
    print(f"explorer in JupyterLab: {time.perf_counter() - started:.1f} s")


def _maths_in_markdown(notebook) -> int:
    """How many $...$ and $$...$$ the markdown cells hold (tex2jax's delimiters; ``\\$`` is a dollar sign)."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown").replace("\\$", "")
    display = re.findall(r"\$\$.+?\$\$", text, flags=re.S)
    inline = re.findall(r"\$[^$]+?\$", re.sub(r"\$\$.+?\$\$", " ", text, flags=re.S))
    return len(display) + len(inline)


# JavaScript: MathJax's rendering of the markdown cells. HTML-CSS writes each typeset formula as a
# span.MathJax with an id ending in -Frame (the fast preview's spans have other classes).
_TYPESET_STATE = """
const cells = Array.from(document.querySelectorAll('.jp-MarkdownCell'));
return {typeset: cells.reduce((n, c) => n + c.querySelectorAll('span.MathJax[id$="-Frame"]').length, 0),
        errors: document.querySelectorAll('.MathJax_Error, .merror').length,
        empty: cells.reduce((n, c) => n + Array.from(c.querySelectorAll('span.MathJax[id$="-Frame"]'))
                            .filter(e => e.getBoundingClientRect().width === 0).length, 0),
        fonts: Array.from(document.fonts).filter(f => f.status === 'loaded').map(f => f.family),
        text: cells.map(c => c.innerText).join('\\n'),
        idle: !!(window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0)};
"""


def _check_maths_typeset(driver, page: str, expected: int) -> None:
    """Wait until MathJax has typeset all ``expected`` formulas of the page's markdown; no raw TeX left."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    state: dict = {}

    def typeset(_driver) -> bool:
        state.update(driver.execute_script(_TYPESET_STATE))
        return state["idle"] and state["typeset"] >= expected

    try:
        WebDriverWait(driver, MATHJAX_SECONDS, poll_frequency=0.25).until(typeset)
    except TimeoutException as timeout:
        raise AssertionError(f"{page}: MathJax typeset {state.get('typeset')} of {expected} formulas in "
                             f"{MATHJAX_SECONDS} s (MathJax idle: {state.get('idle')})") from timeout
    assert state["typeset"] == expected, f"{page}: {state['typeset']} typeset formulas for {expected} in the source"
    assert state["errors"] == 0 and state["empty"] == 0, f"{page}: MathJax errors or empty formulas: {state}"
    assert "$" not in state["text"], f"{page}: raw TeX left in the markdown: {state['text'][:2000]}"
    assert any(family.startswith("STIXMathJax_") for family in state["fonts"]), (
        f"{page}: MathJax's web fonts did not load (loaded: {state['fonts']})")


@pytest.mark.browser
def test_gallery_pages_load_with_their_figures(browser, tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    started = time.perf_counter()
    index, runs = build_gallery(tmp_path / "outputs", model="shapes",
                                notebooks=[NOTEBOOKS / f"{name}.ipynb" for name in GALLERY_NOTEBOOKS], progress=False)
    assert [(run.name, run.error) for run in runs] == [(name, "") for name in GALLERY_NOTEBOOKS]
    built = time.perf_counter()

    browser.get(index.as_uri())
    links = [anchor.get_attribute("href") for anchor in browser.find_elements(By.CSS_SELECTOR, "a")]
    pages = [link for link in links if link.endswith(".html")]
    assert [Path(page).stem for page in pages] == list(GALLERY_NOTEBOOKS)
    for page in pages:
        executed = nbformat.read(tmp_path / "outputs" / f"{Path(page).stem}.ipynb", as_version=4)
        figures = sum("image/png" in output.get("data", {}) for cell in executed.cells if cell.cell_type == "code"
                      for output in cell.outputs)
        assert figures >= 1, f"{page}: the executed notebook has no figure to check"
        browser.get(page)
        decoded: list = []

        def loaded(driver) -> bool:  # get() can return before a file:// page's load event
            decoded[:] = driver.execute_script(
                "return document.readyState === 'complete' ? Array.from(document.images).map("
                "i => [i.complete && i.naturalWidth > 0, i.naturalWidth]) : null;") or []
            return len(decoded) >= figures and all(ok for ok, _ in decoded)

        try:
            WebDriverWait(browser, 60, poll_frequency=0.25).until(loaded)
        except TimeoutException as timeout:
            raise AssertionError(f"{page}: {len(decoded)} <img> for {figures} figures, "
                                 f"decoded (ok, naturalWidth): {decoded}") from timeout
        assert browser.title == Path(page).stem
        maths = _maths_in_markdown(executed)
        assert maths >= 1, f"{page}: the notebook has no maths to check"
        _check_maths_typeset(browser, page, maths)
    print(f"gallery: built in {built - started:.1f} s, checked in {time.perf_counter() - built:.1f} s")


def test_jupyterlab_runs_this_environments_kernel(tmp_path):
    """`make lab` and the browser test use the `python3` kernel, and it must be this virtualenv's Python."""
    environment = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PREFER_ENV_PATH": "1"}
    listing = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"], env=environment,
                             capture_output=True, text=True, timeout=120, check=True)
    spec = json.loads(listing.stdout)["kernelspecs"]["python3"]
    assert Path(spec["resource_dir"]).resolve().is_relative_to(Path(sys.prefix).resolve()), spec["resource_dir"]
    command = spec["spec"]["argv"][0]
    # jupyter_client runs a spec's bare "python" as the server's own interpreter, i.e. this one
    assert command == "python" or Path(shutil.which(command) or command).resolve() == Path(sys.executable).resolve()
