import socket, threading, time
PORT=47801
def serve(fam, addr):
    s=socket.socket(fam, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1)
    s.bind((addr,PORT)); s.listen(8)
    for _ in range(2):
        c,_=s.accept()
        d=c.recv(4096); c.sendall(b"echo:"+d); c.close()
    s.close()
t4=threading.Thread(target=serve,args=(socket.AF_INET,"127.0.0.1")); t4.start()
t6=threading.Thread(target=serve,args=(socket.AF_INET6,"::1")); t6.start()
time.sleep(0.3)
for fam,addr in [(socket.AF_INET,"127.0.0.1"),(socket.AF_INET,"127.0.0.1"),(socket.AF_INET6,"::1"),(socket.AF_INET6,"::1")]:
    c=socket.socket(fam, socket.SOCK_STREAM); c.connect((addr,PORT)); c.sendall(b"hello tcpsentry"); c.recv(4096); c.close(); time.sleep(0.05)
# refused connection: RST
c=socket.socket(); 
try: c.connect(("127.0.0.1",47802))
except OSError as e: print("refused ok", e)
t4.join(); t6.join()
