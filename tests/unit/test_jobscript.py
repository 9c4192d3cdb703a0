"""Job scripts as dask-jobqueue tests them: the #SBATCH header and the command line."""
from afbox.backends.slurm import jobs as jobscript


def test_worker_job_header_and_step():
    h = jobscript.Header(job_name="afbox-hpc-workers", nodes=1, time="45", partition="gpu", account="atlas",
                         output="/s/logs/slurm-workers-%j.out", ntasks_per_node=3, extra=("--constraint=a100",))
    text = jobscript.worker_job(h, ["srun", "--ntasks-per-node=3", "python", "-m", "afbox.backends.slurm.worker_task", "--",
                                    "dask", "worker", "tls://10.0.0.1:8786"],
                                {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "/s/ca dir/ca.pem"})
    lines = text.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert lines[1:8] == ["#SBATCH --job-name=afbox-hpc-workers", "#SBATCH --nodes=1", "#SBATCH --time=45",
                          "#SBATCH --partition=gpu", "#SBATCH --account=atlas",
                          "#SBATCH --output=/s/logs/slurm-workers-%j.out", "#SBATCH --ntasks-per-node=3"]
    assert "#SBATCH --constraint=a100" in lines
    assert "export DASK_DISTRIBUTED__COMM__TLS__CA_FILE='/s/ca dir/ca.pem'" in lines
    assert lines[-1] == ("srun --ntasks-per-node=3 python -m afbox.backends.slurm.worker_task -- dask worker "
                         "tls://10.0.0.1:8786")
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_cmd = next(i for i, ln in enumerate(lines[1:], 1) if not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_cmd:])


def test_head_job_leaves_out_what_was_not_asked_for():
    text = jobscript.head_job(jobscript.Header(job_name="afbox-x", nodes=4, time="2:00:00"), "/v/bin/afbox",
                              "/s/run/slurm-facility.json")
    assert "--partition" not in text and "--account" not in text
    assert "#SBATCH --nodes=4\n#SBATCH --time=2:00:00\n" in text
    assert text.endswith("exec /v/bin/afbox slurm-job --spec /s/run/slurm-facility.json\n")
