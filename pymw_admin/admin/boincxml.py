"""lxml edits of BOINC's XML files: work-unit and result templates, config.xml daemons, project.xml.

Every function takes and returns text: reading and writing the files is the caller's (over a Host).
Edits keep the rest of a document as it was, so a re-run that changes nothing writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from pymw_admin.errors import ConfigError
from pymw_admin.wire.boinc_contract import RESULT_NAME, TASK_NAME

MAX_RESULT_BYTES = 256 * 1024 * 1024


def _tostring(root: etree._Element) -> str:
    etree.indent(root, space="    ")
    return etree.tostring(root, encoding="unicode") + "\n"


def _parse(text: str, what: str) -> etree._Element:
    try:
        return etree.fromstring(text.encode())
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{what} is not valid XML: {exc}") from None


# --- templates -----------------------------------------------------------------------------------


def input_template(task_name: str = TASK_NAME) -> str:
    """The work-unit template: one input file, the task, copied into the slot as ``pymw_task``."""
    root = etree.Element("input_template")
    info = etree.SubElement(root, "file_info")
    etree.SubElement(info, "number").text = "0"
    wu = etree.SubElement(root, "workunit")
    ref = etree.SubElement(wu, "file_ref")
    etree.SubElement(ref, "file_number").text = "0"
    etree.SubElement(ref, "open_name").text = task_name
    etree.SubElement(ref, "copy_file")
    return _tostring(root)


def output_template(result_name: str = RESULT_NAME, max_bytes: int = MAX_RESULT_BYTES) -> str:
    """The result template: one output file, the result record, uploaded when present."""
    root = etree.Element("output_template")
    info = etree.SubElement(root, "file_info")
    etree.SubElement(etree.SubElement(info, "name"), "OUTFILE_0")
    etree.SubElement(info, "generated_locally")
    etree.SubElement(info, "upload_when_present")
    etree.SubElement(info, "max_nbytes").text = str(max_bytes)
    etree.SubElement(etree.SubElement(info, "url"), "UPLOAD_URL")
    result = etree.SubElement(root, "result")
    ref = etree.SubElement(result, "file_ref")
    etree.SubElement(etree.SubElement(ref, "file_name"), "OUTFILE_0")
    etree.SubElement(ref, "open_name").text = result_name
    etree.SubElement(ref, "copy_file")
    return _tostring(root)


# --- config.xml daemons --------------------------------------------------------------------------


@dataclass(frozen=True)
class Daemon:
    """One ``<daemon>`` of config.xml; ``pid_file`` names it (and its log) uniquely."""

    cmd: str
    pid_file: str
    output: str
    disabled: bool = False  # <disabled>1</disabled>: bin/start leaves it alone

    @property
    def program(self) -> str:
        return self.cmd.split()[0]


# seconds an idle validator sleeps (BOINC's default is 5): a master waits on it for each result
VALIDATOR_SLEEP = 1


def app_daemons(app: str) -> list[Daemon]:
    """The daemons the BOINC interface needs for ``app``: BOINC's script validator with our
    comparer, and our own assimilator (it files a batch of work units at a time, where
    script_assimilator starts a process for each).

    server 1.6.2's script daemons split their argument and keep a trailing space on the last
    token, so extra tokens never match: pass the script name alone (the validator gets its
    default arguments, the two files).
    """
    return [
        Daemon(f"script_validator --app {app} --sleep_interval {VALIDATOR_SLEEP} "
               "--compare_script pymw_compare",
               f"pymw_validator_{app}.pid", f"pymw_validator_{app}.log"),
        Daemon(f"pymw_assimilator --app {app}",
               f"pymw_assimilator_{app}.pid", f"pymw_assimilator_{app}.log"),
    ]


def configured_daemons(config_xml: str) -> dict[str, Daemon]:
    """config.xml's daemons by pid file name."""
    root = _parse(config_xml, "config.xml")
    found: dict[str, Daemon] = {}
    for node in root.iterfind("daemons/daemon"):
        cmd = " ".join((node.findtext("cmd") or "").split())
        if not cmd:
            continue
        program = cmd.split()[0].rsplit("/", 1)[-1]  # as bin/start names a daemon's files
        pid = (node.findtext("pid_file") or "").strip() or program + ".pid"
        output = (node.findtext("output") or "").strip() or program + ".log"
        disabled = (node.findtext("disabled") or "0").strip() not in ("0", "")
        found[pid] = Daemon(cmd, pid, output, disabled)
    return found


def set_daemons(config_xml: str, wanted: list[Daemon]) -> str:
    """config.xml with each wanted daemon present exactly as given (matched by pid file)."""
    root = _parse(config_xml, "config.xml")
    daemons = root.find("daemons")
    if daemons is None:
        daemons = etree.SubElement(root, "daemons")
    existing = {}
    for node in daemons.iterfind("daemon"):
        cmd = (node.findtext("cmd") or "").split()
        pid = (node.findtext("pid_file") or "").strip() or (cmd[0] + ".pid" if cmd else "")
        existing[pid] = node
    for daemon in wanted:
        node = existing.get(daemon.pid_file)
        if node is None:
            node = etree.SubElement(daemons, "daemon")
        for child in list(node):
            node.remove(child)
        etree.SubElement(node, "cmd").text = daemon.cmd
        etree.SubElement(node, "pid_file").text = daemon.pid_file
        etree.SubElement(node, "output").text = daemon.output
    return _tostring(root)


# --- project.xml apps ----------------------------------------------------------------------------


def project_apps(project_xml: str) -> dict[str, str]:
    """``{app name: user-friendly name}`` of project.xml."""
    root = _parse(project_xml, "project.xml")
    return {
        (node.findtext("name") or "").strip(): (node.findtext("user_friendly_name") or "").strip()
        for node in root.iterfind("app")
    }


def add_app(project_xml: str, name: str, friendly: str) -> str:
    """project.xml with ``<app>`` ``name`` present (its user-friendly name set)."""
    root = _parse(project_xml, "project.xml")
    for node in root.iterfind("app"):
        if (node.findtext("name") or "").strip() == name:
            label = node.find("user_friendly_name")
            if label is None:
                label = etree.SubElement(node, "user_friendly_name")
            label.text = friendly
            return _tostring(root)
    node = etree.SubElement(root, "app")
    etree.SubElement(node, "name").text = name
    etree.SubElement(node, "user_friendly_name").text = friendly
    return _tostring(root)


def project_platforms(project_xml: str) -> frozenset[str]:
    root = _parse(project_xml, "project.xml")
    return frozenset((n.findtext("name") or "").strip() for n in root.iterfind("platform"))


def add_platform(project_xml: str, name: str, friendly: str = "") -> str:
    """project.xml with ``<platform>`` ``name`` present (added only when missing)."""
    if name in project_platforms(project_xml):
        return project_xml
    root = _parse(project_xml, "project.xml")
    node = etree.Element("platform")
    etree.SubElement(node, "name").text = name
    etree.SubElement(node, "user_friendly_name").text = friendly or name
    apps = root.find("app")
    if apps is not None:
        apps.addprevious(node)
    else:
        root.append(node)
    return _tostring(root)


def config_value(config_xml: str, tag: str) -> str:
    """A ``<config>`` setting's text ('' when absent)."""
    node = _parse(config_xml, "config.xml").find(f"config/{tag}")
    return (node.text or "").strip() if node is not None else ""


__all__ = [
    "RESULT_NAME",
    "TASK_NAME",
    "Daemon",
    "add_app",
    "add_platform",
    "app_daemons",
    "config_value",
    "configured_daemons",
    "input_template",
    "output_template",
    "project_apps",
    "project_platforms",
    "set_daemons",
]
