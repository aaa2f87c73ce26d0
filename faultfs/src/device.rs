//! One device file: its backing file, its faults, and the threads that serve its requests
//! (a slow device delays its own queue, not the others').

use crate::faults::{DeviceFaults, Verdict};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// One device file: its backing file, its faults, its threads.
pub(crate) struct Device {
    pub name: String,
    pub size: u64,
    pub backing: File,
    pub faults: Arc<DeviceFaults>,
    pub sync_backing: bool,
    queue: Sender<Job>,
}

impl Device {
    pub fn new(
        name: String,
        size: u64,
        backing: File,
        faults: Arc<DeviceFaults>,
        sync_backing: bool,
        threads: usize,
    ) -> std::io::Result<Device> {
        let (queue, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("faultfs-{name}-{i}"))
                .spawn(move || serve(&rx))?;
        }
        Ok(Device {
            name,
            size,
            backing,
            faults,
            sync_backing,
            queue,
        })
    }

    pub fn read(&self, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        let offset = offset.min(end);
        self.faults.wait();
        if self.faults.on_read(offset..end) == Verdict::Eio {
            return Err(libc::EIO);
        }
        let len = usize::try_from(end - offset).map_err(|_| libc::EINVAL)?;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.backing.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u32, i32> {
        let len = u64::try_from(data.len()).map_err(|_| libc::EINVAL)?;
        let end = offset.checked_add(len).ok_or(libc::EINVAL)?;
        // A device does not grow.
        if end > self.size {
            return Err(libc::ENOSPC);
        }
        self.faults.wait();
        if self.faults.on_write(offset..end) == Verdict::Eio {
            return Err(libc::EIO);
        }
        self.backing
            .write_all_at(data, offset)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        self.faults.written(offset..end);
        u32::try_from(data.len()).map_err(|_| libc::EINVAL)
    }

    pub fn fsync(&self) -> Result<(), i32> {
        if self.faults.on_fsync() == Verdict::Eio {
            return Err(libc::EIO);
        }
        if self.sync_backing {
            self.backing
                .sync_data()
                .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        }
        Ok(())
    }

    pub fn submit(&self, job: Job) {
        // The workers live as long as the sender: a send cannot fail while `self` lives.
        if let Err(e) = self.queue.send(job) {
            (e.0)();
        }
    }
}

fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            guard.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
